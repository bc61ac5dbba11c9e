"""The OpenCode client's HTTP plumbing, without an OpenCode server.

- One SSL context per process: building one costs ~20 ms of CPU (``ssl.create_default_context``
  loads the CA bundle), and a wave builds a client per agent; every client shares it.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from typing import Any

import certifi
import pytest

from resources.opencode.client import OpenCodeClient, shared_ssl_context


@pytest.fixture
def context_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """Every ``ssl.create_default_context`` call (its keyword arguments), from a fresh cache."""
    calls: list[dict[str, Any]] = []
    original = ssl.create_default_context

    def counting(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        calls.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(ssl, "create_default_context", counting)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    shared_ssl_context.cache_clear()
    yield calls
    shared_ssl_context.cache_clear()


async def _open_and_close(count: int) -> list[OpenCodeClient]:
    clients = [OpenCodeClient(f"http://127.0.0.1:{4000 + n}") for n in range(count)]
    for client in clients:
        await client.aclose()
    return clients


def test_clients_share_one_ssl_context_built_once(context_calls: list[dict[str, Any]]) -> None:
    asyncio.run(_open_and_close(5))
    assert len(context_calls) == 1
    assert context_calls[0] == {"cafile": certifi.where()}
    assert shared_ssl_context() is shared_ssl_context()
    assert len(context_calls) == 1


def test_the_ssl_context_honours_ssl_cert_file(
    context_calls: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", certifi.where())
    asyncio.run(_open_and_close(2))
    assert context_calls == [{"cafile": certifi.where()}]


def test_the_ssl_context_honours_ssl_cert_dir(
    context_calls: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))
    asyncio.run(_open_and_close(2))
    assert context_calls == [{"capath": str(tmp_path)}]
