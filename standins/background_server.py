"""Run an ASGI app with uvicorn in a background thread, on a free port, for tests and demos.

    with BackgroundServer(app) as server:
        httpx.get(f"{server.url}/...")

The listening socket is bound before uvicorn starts (port 0 → the kernel picks a free port), so
there is no race between choosing a port and using it.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn

START_TIMEOUT_SECONDS = 10.0
STOP_TIMEOUT_SECONDS = 10.0


class BackgroundServer:
    """One uvicorn server in a daemon thread. ``start()`` returns once it accepts connections."""

    def __init__(
        self,
        app: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        graceful_shutdown_seconds: float = 2.0,
        tls: tuple[str, str] | None = None,  # (certificate file, key file): serve https
    ) -> None:
        self._app = app
        self._tls = tls
        self._host = host
        self._port = port
        self._graceful = graceful_shutdown_seconds
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self.port: int | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("server not started")
        return f"{'https' if self._tls else 'http'}://{self._host}:{self.port}"

    def start(self) -> str:
        if self._thread is not None:
            return self.url
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, self._port))
        sock.listen(128)
        self._socket = sock
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app,
            log_level="warning",
            lifespan="off",
            access_log=False,
            timeout_graceful_shutdown=int(self._graceful) or 1,
            ssl_certfile=self._tls[0] if self._tls else None,
            ssl_keyfile=self._tls[1] if self._tls else None,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [sock]},
            name=f"uvicorn-{self.port}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"uvicorn on port {self.port} exited while starting")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"uvicorn on port {self.port} did not start in time")
            time.sleep(0.02)
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT_SECONDS)
            if self._thread.is_alive() and self._server is not None:
                self._server.force_exit = True
                self._thread.join(STOP_TIMEOUT_SECONDS)
        if self._socket is not None:
            self._socket.close()
        self._server = None
        self._thread = None
        self._socket = None

    def __enter__(self) -> BackgroundServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
