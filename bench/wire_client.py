"""A lean HTTP/1.1 client for load generation: one keep-alive connection, requests written as
bytes, answers read by their Content-Length.

On two cores the load generator shares the CPU with the server it measures. httpx spent about
2 ms of CPU per request here (its pool, models, event hooks), close to the server's own 2.7 ms:
at 300 requests/s the generator alone took two thirds of a core and the server waited for a
CPU. This client does only what the bench needs (no redirects, no chunked answers, no TLS) in
about a tenth of that, so what the bench measures is the server.
"""

from __future__ import annotations

import asyncio
import contextlib

HEADER_END = b"\r\n\r\n"


class WireError(Exception):
    """No answer: the connection closed or sent something this client does not read."""


def render_request(
    method: str, path: str, host: str, headers: dict[str, str], body: bytes
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    if body:
        lines.append("Content-Type: application/json")
    lines.extend(f"{name}: {value}" for name, value in headers.items())
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class WireConnection:
    """One connection, opened at the first request, kept open between requests (one at a
    time: HTTP/1.1 without pipelining)."""

    def __init__(self, host: str, port: int) -> None:
        self._host, self._port = host, port
        self._authority = f"{host}:{port}"
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes]:
        """The answer's status code and body."""
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        assert self._reader is not None
        try:
            self._writer.write(render_request(method, path, self._authority, headers, body))
            head = await self._reader.readuntil(HEADER_END)
            status, length = _status_and_length(head)
            return status, await self._reader.readexactly(length)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as error:
            await self.close()
            raise WireError(type(error).__name__) from error

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


def _status_and_length(head: bytes) -> tuple[int, int]:
    status_line, *fields = head[: -len(HEADER_END)].split(b"\r\n")
    parts = status_line.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        raise WireError(f"not an HTTP/1.x answer: {status_line[:60]!r}")
    length = None
    for field in fields:
        name, _, value = field.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"transfer-encoding":
            raise WireError("chunked answers are not read by this client")
    if length is None:
        raise WireError("an answer without Content-Length")
    return int(parts[1]), length
