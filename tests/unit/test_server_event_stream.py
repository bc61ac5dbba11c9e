"""The server's event stream, without an OpenCode server (an ``httpx.MockTransport``).

- One stream of every directory (``GET /global/event``) serves the sessions in workspaces of
  their own: each event reaches the queue of its session, whatever its directory; another
  session's events (another tenant's, on a shared server) reach no queue.
- On each (re)connection the stream re-syncs every subscribed session from ``GET
  /session/status`` of the directory it works in (that call answers for one directory only), so
  a session that went idle while the stream was down is not waited on forever.
- A stream scoped to one directory (``GET /event?directory=``) works as before.
- An event is parsed only when its text names a session followed here: on a server shared by
  several waves (tenants), most of its stream is the others' sessions, read by every wave.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from resources.opencode.client import OpenCodeClient
from resources.opencode.event_stream import names_a_followed_session
from resources.opencode.models import ServerEvent, session_id_of

TRACES = Path(__file__).parents[1] / "integration" / "opencode" / "traces"

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


def _recorded_events() -> list[str]:
    """Every event the real server sent in the recorded traces, as its stream's text."""
    return [
        line.removeprefix("data: ")
        for trace in sorted(TRACES.glob("*.sse"))
        for line in trace.read_text().splitlines()
        if line.startswith("data: ")
    ]


def test_the_recorded_events_that_name_a_followed_session_are_told_apart_without_parsing() -> None:
    events = _recorded_events()
    sessions = {session_id_of(json.loads(e).get("properties") or {}) for e in events} - {None}
    assert len(sessions) == 5 and len(events) > 200
    for followed in [set(), *({s} for s in sessions), sessions, {"ses_not_on_this_server"}]:
        for event in events:
            parsed = session_id_of(json.loads(event).get("properties") or {})
            envelope = f'{{"directory":"/srv/a","payload":{event}}}'  # as /global/event sends
            expected = parsed in followed
            assert names_a_followed_session(event, followed) is expected, (followed, event)
            assert names_a_followed_session(envelope, followed) is expected, (followed, event)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        # another session's text quoting a followed one's id: inside a string, quotes are escaped
        (
            '{"type":"message.part.updated","properties":{"part":{"sessionID":"ses_b",'
            '"text":"see \\"sessionID\\":\\"ses_a\\""}}}',
            False,
        ),
        # the key written otherwise than the server writes it: left to the full parse
        ('{"type":"session.idle","properties":{"sessionID": "ses_b"}}', True),
        ('{"type":"server.heartbeat","properties":{}}', False),
        ('{"type":"session.idle","properties":{"sessionID":"ses_a"}}', True),
    ],
)
def test_an_event_names_a_followed_session_only_by_a_key_of_its_own(
    data: str, expected: bool
) -> None:
    assert names_a_followed_session(data, {"ses_a"}) is expected


def test_another_sessions_events_are_not_read_at_all(caplog: pytest.LogCaptureFixture) -> None:
    """An event of a session not followed here is not parsed: even one the stream could not
    read (cut short) is passed over without a word, where a followed session's is reported."""
    server = _Server(
        events=[
            {"payload": {"type": "server.connected", "properties": {}}},
            _envelope(ELSEWHERE, "session.idle", "ses_x"),
            _envelope(DIRECTORY_A, "session.idle", "ses_a"),
        ],
        statuses={},
    )
    cut_short = '{"directory":"/srv","payload":{"type":"message.updated","properties":{"sessionID"'

    class _CutShort(_EventsThenOpen):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield f'data: {cut_short}:"ses_x","info":\n\n'.encode()
            async for chunk in super().__aiter__():
                yield chunk

    def respond(request: httpx.Request) -> httpx.Response:
        answer = server(request)
        if request.url.path == "/global/event":
            return httpx.Response(200, headers=answer.headers, stream=_CutShort(server.events))
        return answer

    async def run() -> list[ServerEvent]:
        transport = httpx.MockTransport(respond)
        async with OpenCodeClient("http://opencode.test", transport=transport) as client:
            stream = client.global_event_stream()
            queue = stream.subscribe("ses_a", DIRECTORY_A)
            await stream.start(wait_seconds=5.0)
            try:
                return await _drain(queue, 2)
            finally:
                await stream.close()

    with caplog.at_level(logging.WARNING, logger="resources.opencode.event_stream"):
        events = asyncio.run(run())
    assert [e.type for e in events] == ["session.status", "session.idle"]
    assert not [r for r in caplog.records if "unreadable" in r.getMessage()]
