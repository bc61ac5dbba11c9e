"""The server's event stream, without an OpenCode server (an ``httpx.MockTransport``).

- One stream of every directory (``GET /global/event``) serves the sessions in workspaces of
  their own: each event reaches the queue of its session, whatever its directory; another
  session's events (another tenant's, on a shared server) reach no queue.
- On each (re)connection the stream re-syncs every subscribed session from ``GET
  /session/status`` of the directory it works in (that call answers for one directory only), so
  a session that went idle while the stream was down is not waited on forever.
- A stream scoped to one directory (``GET /event?directory=``) works as before.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from resources.opencode.client import OpenCodeClient
from resources.opencode.models import ServerEvent

DIRECTORY_A = "/srv/slots/acme/slot-a"
DIRECTORY_B = "/srv/slots/acme/slot-b"
ELSEWHERE = "/srv/slots/globex/slot-x"


def _envelope(directory: str, event_type: str, session_id: str) -> dict[str, Any]:
    properties = {"sessionID": session_id, "info": {"sessionID": session_id}}
    return {"directory": directory, "payload": {"type": event_type, "properties": properties}}


class _EventsThenOpen(httpx.AsyncByteStream):
    """Sends `events` as SSE, written as the server writes them (no spaces), then stays
    connected (as the server does between heartbeats)."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self._events = events

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for event in self._events:
            yield f"data: {json.dumps(event, separators=(',', ':'))}\n\n".encode()
        await asyncio.sleep(3600)


class _Server:
    """`/global/event` and `/event` send `events`; `/session/status` answers per directory."""

    def __init__(self, events: list[dict[str, Any]], statuses: dict[str, dict[str, Any]]) -> None:
        self.events = events
        self.statuses = statuses
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path in ("/global/event", "/event"):
            return httpx.Response(
                200,
                headers={"content-type": "text/event-stream"},
                stream=_EventsThenOpen(self.events),
            )
        if request.url.path == "/session/status":
            directory = request.url.params.get("directory", "")
            return httpx.Response(200, json=self.statuses.get(directory, {}))
        return httpx.Response(404, json={})

    def status_directories(self) -> list[str]:
        return sorted(
            r.url.params.get("directory", "")
            for r in self.requests
            if r.url.path == "/session/status"
        )


async def _drain(queue: asyncio.Queue[ServerEvent], count: int) -> list[ServerEvent]:
    return [await asyncio.wait_for(queue.get(), 5.0) for _ in range(count)]


def test_one_stream_of_every_directory_routes_each_session_its_own_events() -> None:
    server = _Server(
        events=[
            {"payload": {"type": "server.connected", "properties": {}}},
            _envelope(DIRECTORY_A, "session.idle", "ses_a"),
            _envelope(ELSEWHERE, "session.idle", "ses_x"),
            _envelope(DIRECTORY_B, "message.updated", "ses_b"),
            {"payload": {"type": "sync", "syncEvent": {"id": "1"}}},
        ],
        statuses={DIRECTORY_A: {"ses_a": {"type": "busy"}}},
    )

    async def run() -> tuple[list[ServerEvent], list[ServerEvent], str]:
        transport = httpx.MockTransport(server)
        async with OpenCodeClient("http://opencode.test", transport=transport) as client:
            stream = client.global_event_stream()
            queue_a = stream.subscribe("ses_a", DIRECTORY_A)
            queue_b = stream.subscribe("ses_b", DIRECTORY_B)
            await stream.start(wait_seconds=5.0)
            try:
                events_a = await _drain(queue_a, 2)
                events_b = await _drain(queue_b, 2)
            finally:
                await stream.close()
            path = next(r.url.path for r in server.requests if "event" in r.url.path)
            return events_a, events_b, path

    events_a, events_b, path = asyncio.run(run())
    assert path == "/global/event"
    # first the re-sync from its own directory's statuses, then its events, and no one else's
    assert [(e.type, e.properties.get("resync")) for e in events_a] == [
        ("session.status", True),
        ("session.idle", None),
    ]
    assert events_a[0].status is not None and events_a[0].status.type == "busy"
    assert [(e.type, e.session_id) for e in events_b] == [
        ("session.status", "ses_b"),
        ("message.updated", "ses_b"),
    ]
    assert events_b[0].status is not None and events_b[0].status.type == "idle"
    assert server.status_directories() == [DIRECTORY_A, DIRECTORY_B]


def test_a_session_subscribed_twice_keeps_the_directory_it_was_first_given() -> None:
    """The follower subscribes again (for the same queue) without naming the directory."""
    server = _Server(
        events=[{"payload": {"type": "server.connected", "properties": {}}}], statuses={}
    )

    async def run() -> bool:
        async with OpenCodeClient(
            "http://opencode.test", transport=httpx.MockTransport(server)
        ) as client:
            stream = client.global_event_stream()
            first = stream.subscribe("ses_a", DIRECTORY_A)
            again = stream.subscribe("ses_a")
            await stream.start(wait_seconds=5.0)
            try:
                await _drain(first, 1)
            finally:
                await stream.close()
            return first is again

    assert asyncio.run(run())
    assert server.status_directories() == [DIRECTORY_A]


def test_a_stream_of_one_directory_resyncs_from_that_directory() -> None:
    server = _Server(
        events=[
            {"type": "server.connected", "properties": {}},
            {"type": "session.idle", "properties": {"sessionID": "ses_a"}},
        ],
        statuses={DIRECTORY_A: {"ses_a": {"type": "busy"}}},
    )

    async def run() -> list[ServerEvent]:
        async with OpenCodeClient(
            "http://opencode.test", transport=httpx.MockTransport(server)
        ) as client:
            stream = client.event_stream(DIRECTORY_A)
            queue = stream.subscribe("ses_a")
            await stream.start(wait_seconds=5.0)
            try:
                return await _drain(queue, 2)
            finally:
                await stream.close()

    events = asyncio.run(run())
    assert [e.type for e in events] == ["session.status", "session.idle"]
    assert server.status_directories() == [DIRECTORY_A]
    event_request = next(r for r in server.requests if r.url.path == "/event")
    assert event_request.url.params.get("directory") == DIRECTORY_A


def test_events_reach_their_session_whatever_directory_the_server_names() -> None:
    """The server names the directory as it resolved it: a session asked for under a symlinked
    path has its events wrapped with the real path. They still reach it (routing goes by session
    id only); the server's `sync` copies and other sessions' events reach no queue."""
    asked = "/srv/link/slot-a-0"
    resolved = "/srv/real/slot-a-0"
    server = _Server(
        events=[
            {"payload": {"type": "server.connected", "properties": {}}},
            {"directory": resolved, "payload": {"type": "sync", "syncEvent": {"id": "1"}}},
            _envelope(resolved, "message.updated", "ses_a"),
            _envelope(ELSEWHERE, "session.idle", "ses_x"),
            _envelope(resolved, "session.idle", "ses_a"),
        ],
        statuses={},
    )

    async def run() -> list[ServerEvent]:
        async with OpenCodeClient(
            "http://opencode.test", transport=httpx.MockTransport(server)
        ) as client:
            stream = client.global_event_stream()
            queue = stream.subscribe("ses_a", asked)
            await stream.start(wait_seconds=5.0)
            try:
                events = await _drain(queue, 3)
                await asyncio.sleep(0.05)
                assert queue.empty()
            finally:
                await stream.close()
            return events

    events = asyncio.run(run())
    assert [e.type for e in events] == ["session.status", "message.updated", "session.idle"]
    assert server.status_directories() == [asked]
