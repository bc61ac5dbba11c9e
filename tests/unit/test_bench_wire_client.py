"""The bench's lean HTTP/1.1 client: requests written as bytes, answers read by Content-Length,
one keep-alive connection each (against a real asyncio server here)."""

from __future__ import annotations

import asyncio
import json

import pytest

from bench.wire_client import WireConnection, WireError, render_request


def test_a_request_is_rendered_with_its_length_and_headers() -> None:
    raw = render_request("POST", "/api/v1/sessions", "127.0.0.1:8000", {"X-A": "b"}, b'{"k":1}')
    head, body = raw.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /api/v1/sessions HTTP/1.1"
    assert "Host: 127.0.0.1:8000" in lines and "X-A: b" in lines
    assert "Content-Length: 7" in lines and "Content-Type: application/json" in lines
    assert body == b'{"k":1}'


async def _serve(answers: list[bytes]) -> tuple[asyncio.AbstractServer, int, list[bytes]]:
    received: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for answer in answers:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            )
            received.append(head + await reader.readexactly(length))
            writer.write(answer)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], received


def test_answers_are_read_by_length_on_one_kept_connection() -> None:
    async def scenario() -> tuple[list[tuple[int, bytes]], list[bytes]]:
        body = json.dumps({"id": "IND-1"}).encode()
        answers = [
            b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\n"
            + f"content-length: {len(body)}\r\n\r\n".encode()
            + body,
            b"HTTP/1.1 429 Too Many Requests\r\nContent-Length: 2\r\nretry-after: 1\r\n\r\n{}",
        ]
        server, port, received = await _serve(answers)
        async with server:
            connection = WireConnection("127.0.0.1", port)
            got = [
                await connection.request("POST", "/a", {}, b'{"n":1}'),
                await connection.request("GET", "/b", {}, b""),
            ]
            await connection.close()
        return got, received

    got, received = asyncio.run(scenario())
    assert got == [(201, b'{"id": "IND-1"}'), (429, b"{}")]
    assert len(received) == 2 and received[0].endswith(b'{"n":1}')


def test_a_closed_connection_is_an_error_not_an_answer() -> None:
    async def scenario() -> None:
        server, port, _ = await _serve([])
        async with server:
            connection = WireConnection("127.0.0.1", port)
            with pytest.raises(WireError):
                await connection.request("GET", "/", {}, b"")
            await connection.close()

    asyncio.run(scenario())
