"""A PostgreSQL cluster and a Redis server of the chaos suite's own: it kills and restarts them,
which it must never do to the servers the other tests (and engineers) share.

PostgreSQL: `initdb` into a temporary directory (trust authentication, the loopback, a free
port), run as the `postgres` OS user when the suite runs as root (the server refuses to run as
root). Redis: `redis-server` with no persistence, so a restart after `kill -9` starts empty,
as a Redis lost with its host would.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import redis
from sqlalchemy import create_engine, text

from tests.integration.deploy.host import free_port, wait_for

POSTGRES_BIN_GLOB = "/usr/lib/postgresql/*/bin"
POSTGRES_BIN_ENV = "INDORCH_POSTGRES_BIN"  # a directory holding initdb, pg_ctl, postgres
POSTGRES_OS_USER = "postgres"
START_WITHIN_SECONDS = 60
RUN_PROCESS_MARK = "spawn_main"  # how a run process of a gRPC code server is started


class MissingBinary(RuntimeError):
    """A server binary the suite needs is not installed (the message says which and where)."""


def postgres_bin_dir() -> Path:
    candidates = [os.environ.get(POSTGRES_BIN_ENV, ""), *sorted(glob.glob(POSTGRES_BIN_GLOB))[::-1]]
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(str(Path(on_path).parent))
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").exists():
            return Path(candidate)
    raise MissingBinary(
        f"PostgreSQL server binaries (initdb, pg_ctl) not found in ${POSTGRES_BIN_ENV}, "
        f"{POSTGRES_BIN_GLOB} or PATH (Debian: apt-get install postgresql)"
    )


def redis_server_binary() -> Path:
    found = shutil.which("redis-server")
    if found is None:
        raise MissingBinary("redis-server not found on PATH (Debian: apt-get install redis-server)")
    return Path(found)


class PrivatePostgres:
    """One PostgreSQL cluster in a temporary directory; `restart()` is `pg_ctl restart -m
    immediate` (the server crashes and recovers from its WAL; every connection is cut)."""

    def __init__(self) -> None:
        self.bin = postgres_bin_dir()
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="indorch-chaos-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._as_postgres = os.geteuid() == 0

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def database_url(self, name: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", POSTGRES_OS_USER, "--"] if self._as_postgres else []
        subprocess.run([*prefix, *command], check=True, capture_output=True, timeout=120)

    def _pg_ctl(self, *arguments: str) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 "
            f"-c unix_socket_directories={self.root} -c fsync=off"
        )
        self._run(
            str(self.bin / "pg_ctl"),
            *arguments,
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            options,
            "-w",
            "-t",
            str(START_WITHIN_SECONDS),
        )

    def start(self) -> PrivatePostgres:
        if self._as_postgres:
            shutil.chown(self.root, POSTGRES_OS_USER, POSTGRES_OS_USER)
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-sync",
        )
        self._pg_ctl("start")
        return self

    def restart(self) -> None:
        self._pg_ctl("restart", "-m", "immediate")

    def create_database(self, name: str) -> str:
        admin = create_engine(self.url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            admin.dispose()
        return self.database_url(name)

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self._run(str(self.bin / "pg_ctl"), "stop", "-D", str(self.data), "-m", "immediate")
        shutil.rmtree(self.root, ignore_errors=True)


class PrivateRedis:
    """One `redis-server` without persistence; `kill()` is `kill -9`, `start()` brings it back
    on the same port, empty."""

    def __init__(self) -> None:
        self.binary = redis_server_binary()
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        self.process = subprocess.Popen(
            [
                *(str(self.binary), "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        try:
            wait_for("the private Redis", lambda: bool(client.ping()), within=30, every=0.2)
        finally:
            client.close()
        return self

    def kill(self) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        self.kill()


def descendants(pid: int) -> list[int]:
    """The process ids below `pid` (children, grandchildren, ...), read from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (entry / "stat").read_text()
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: list[int] = []
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, its_parent in parents.items() if its_parent == parent]
        found += children
        frontier += children
    return found


def parent_of(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def run_processes(code_server: int) -> list[int]:
    """The run processes the gRPC code server `code_server` spawned (Dagster's DefaultRunLauncher:
    a `multiprocessing` spawn per run), not their own spawned children (a multiprocess
    executor's steps)."""
    spawned = {pid for pid in descendants(code_server) if RUN_PROCESS_MARK in command_line(pid)}
    return sorted(pid for pid in spawned if parent_of(pid) not in spawned)


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def wait_gone(pid: int, within: float = 30) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.1)
