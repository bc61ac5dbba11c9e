"""Fixtures for the Redis tests: clean tenants on the shared server, and a server we can kill.

- ``redis_client``: a client of the shared test server (``TEST_REDIS_URL``, see tests/conftest.py).
- ``tenant`` / ``other_tenant``: fresh tenant slugs; their keys are deleted after the test.
- ``own_redis``: a private ``redis-server`` on a free port (no persistence) that a test may
  ``kill()`` and ``start()`` again on the same port, to play an outage and a recovery.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.conftest import services_required

START_TIMEOUT_SECONDS = 5.0


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        yield client
    finally:
        client.close()


def _new_tenant(client: redis.Redis) -> Iterator[str]:
    slug = f"t-{uuid.uuid4().hex[:12]}"
    try:
        yield slug
    finally:
        keys = list(client.scan_iter(match=f"indorch:{slug}:*"))
        if keys:
            client.delete(*keys)


@pytest.fixture
def tenant(redis_client: redis.Redis) -> Iterator[str]:
    yield from _new_tenant(redis_client)


@pytest.fixture
def other_tenant(redis_client: redis.Redis) -> Iterator[str]:
    yield from _new_tenant(redis_client)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServerProcess:
    """A real redis-server we own: `kill()` is a crash (SIGKILL), `start()` brings it back."""

    def __init__(self, binary: str, port: int, workdir: Path) -> None:
        self.binary = binary
        self.port = port
        self.workdir = workdir
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--dir", str(self.workdir)]
        self._process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.ConnectionError as error:
                    if time.monotonic() > deadline or self._process.poll() is not None:
                        message = f"redis-server on port {self.port} did not start"
                        raise RuntimeError(message) from error
                    time.sleep(0.02)
        finally:
            client.close()

    def kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(timeout=5)
        self._process = None


def redis_server_binary() -> str:
    """The redis-server program; without it the test skips (fails if services are required)."""
    binary = shutil.which("redis-server")
    if binary is None:
        reason = "redis-server is not installed (apt-get install redis-server)"
        if services_required():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return binary


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServerProcess]:
    server = RedisServerProcess(redis_server_binary(), _free_port(), tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()
