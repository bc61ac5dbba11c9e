"""One stream of every directory per agent server in a process, shared by its waves.

Waves run in threads of the run worker, each on an event loop of its own. Each used to read
``GET /global/event`` of every server on a connection of its own, so a server sent each event
once per wave (tenant). Here the waves share one connection per server and credentials, and each
wave's view gets, on its own loop, the events of the sessions it subscribed and no others:

- two waves on two threads: one connection; each sees only its own sessions' events;
- a hostile view cannot take another's session off the stream (unsubscribe of a session it does
  not hold does nothing), and another password never shares the stream;
- the last view closed closes the connection; the next view opens a new one;
- a reconnection re-syncs every view's sessions and each view's ``connected`` follows it;
- a wave gone without closing its view (its loop closed) does not stop the others' events.

The server is an ``httpx.MockTransport`` whose stream sends what the test puts in it.
"""

from __future__ import annotations

import asyncio
import json
import queue
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from resources.opencode.client import OpenCodeClient
from resources.opencode.models import ServerEvent
from resources.opencode.shared_event_stream import SharedEventStreams

WAIT = 5.0


def _envelope(directory: str, event_type: str, session_id: str) -> dict[str, Any]:
    properties = {"sessionID": session_id, "info": {"sessionID": session_id}}
    return {"directory": directory, "payload": {"type": event_type, "properties": properties}}


class _Feed(httpx.AsyncByteStream):
    """One connection's SSE: sends what `outbox` is given; `None` drops the connection."""

    def __init__(self, outbox: queue.Queue[dict[str, Any] | None], closed: threading.Event):
        self._outbox = outbox
        self._closed = closed

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b'data: {"payload":{"type":"server.connected","properties":{}}}\n\n'
        while True:
            try:
                event = self._outbox.get_nowait()
            except queue.Empty:
                await asyncio.sleep(0.005)
                continue
            if event is None:
                return
            yield f"data: {json.dumps(event, separators=(',', ':'))}\n\n".encode()

    async def aclose(self) -> None:
        self._closed.set()


class _Server:
    """Counts `/global/event` connections; answers `/session/status` from `statuses`."""

    def __init__(self) -> None:
        self.connections: list[tuple[str | None, threading.Event]] = []
        self.outboxes: list[queue.Queue[dict[str, Any] | None]] = []
        self.statuses: dict[str, dict[str, Any]] = {}
        self.transport = httpx.MockTransport(self)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/global/event":
            outbox: queue.Queue[dict[str, Any] | None] = queue.Queue()
            closed = threading.Event()
            self.outboxes.append(outbox)
            self.connections.append((request.headers.get("authorization"), closed))
            return httpx.Response(
                200, headers={"content-type": "text/event-stream"}, stream=_Feed(outbox, closed)
            )
        if request.url.path == "/session/status":
            return httpx.Response(200, json=self.statuses.get(request.url.params["directory"], {}))
        return httpx.Response(404, json={})

    def send(self, event: dict[str, Any]) -> None:
        self.outboxes[-1].put(event)

    def drop(self) -> None:
        self.outboxes[-1].put(None)

    def client(self, password: str | None = None) -> OpenCodeClient:
        return OpenCodeClient("http://opencode.test", password, transport=self.transport)


@pytest.fixture
def hub() -> Iterator[SharedEventStreams]:
    streams = SharedEventStreams()
    yield streams
    streams.shutdown()


def _until(condition: Callable[[], bool]) -> None:
    finished = threading.Event()

    def poll() -> None:
        while not condition():
            threading.Event().wait(0.005)
        finished.set()

    threading.Thread(target=poll, daemon=True).start()
    assert finished.wait(WAIT), "timed out"


class _Wave:
    """A wave: its own thread and event loop, one view of the server's shared stream."""

    def __init__(self, hub: SharedEventStreams, client: OpenCodeClient) -> None:
        self.hub, self.client = hub, client
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.view = self.call(self._start)

    async def _start(self) -> Any:
        view = self.hub.view(self.client)
        await view.start(wait_seconds=WAIT)
        return view

    def call(self, make: Callable[[], Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(make(), self.loop).result(WAIT)

    def subscribe(self, session_id: str, directory: str) -> asyncio.Queue[ServerEvent]:
        async def subscribe() -> asyncio.Queue[ServerEvent]:
            return self.view.subscribe(session_id, directory)

        return self.call(subscribe)

    def next_event(self, events: asyncio.Queue[ServerEvent]) -> ServerEvent:
        async def get() -> ServerEvent:
            return await asyncio.wait_for(events.get(), WAIT)

        return self.call(get)

    def pending(self, events: asyncio.Queue[ServerEvent]) -> list[ServerEvent]:
        async def drained() -> list[ServerEvent]:
            await asyncio.sleep(0.1)  # what was on its way has arrived
            return [events.get_nowait() for _ in range(events.qsize())]

        return self.call(drained)

    def close(self) -> None:
        self.call(self.view.close)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(WAIT)
        self.loop.close()


def test_waves_on_two_threads_share_one_connection_and_see_only_their_own_sessions(
    hub: SharedEventStreams,
) -> None:
    server = _Server()
    acme, globex = _Wave(hub, server.client()), _Wave(hub, server.client())
    try:
        assert acme.view.connected.is_set() and globex.view.connected.is_set()
        assert len(server.connections) == 1
        ours = acme.subscribe("ses_acme", "/srv/acme/slot-0")
        theirs = globex.subscribe("ses_globex", "/srv/globex/slot-0")
        server.send(_envelope("/srv/globex/slot-0", "session.idle", "ses_globex"))
        server.send(_envelope("/srv/acme/slot-0", "session.idle", "ses_acme"))
        assert acme.next_event(ours).session_id == "ses_acme"
        assert globex.next_event(theirs).session_id == "ses_globex"
        assert acme.pending(ours) == [] and globex.pending(theirs) == []
    finally:
        acme.close(), globex.close()
        acme.stop(), globex.stop()


def test_a_view_cannot_take_another_waves_session_off_the_stream(
    hub: SharedEventStreams,
) -> None:
    server = _Server()
    acme, globex = _Wave(hub, server.client()), _Wave(hub, server.client())
    try:
        ours = acme.subscribe("ses_acme", "/srv/acme/slot-0")

        async def hostile() -> None:
            globex.view.unsubscribe("ses_acme")

        globex.call(hostile)
        globex.close()  # nor does its closing take it
        server.send(_envelope("/srv/acme/slot-0", "session.idle", "ses_acme"))
        assert acme.next_event(ours).session_id == "ses_acme"
    finally:
        acme.close()
        acme.stop(), globex.stop()


def test_another_password_never_shares_the_stream(hub: SharedEventStreams) -> None:
    server = _Server()
    acme = _Wave(hub, server.client("acme-secret"))
    globex = _Wave(hub, server.client("globex-secret"))
    try:
        assert len(server.connections) == 2
        assert server.connections[0][0] != server.connections[1][0]
    finally:
        acme.close(), globex.close()
        acme.stop(), globex.stop()


def test_the_last_view_closed_closes_the_connection_and_the_next_opens_one(
    hub: SharedEventStreams,
) -> None:
    server = _Server()
    first, second = _Wave(hub, server.client()), _Wave(hub, server.client())
    try:
        first.close()
        assert not server.connections[0][1].is_set()  # the second still reads it
        second.close()
        _until(server.connections[0][1].is_set)
        third = _Wave(hub, server.client())
        assert len(server.connections) == 2 and third.view.connected.is_set()
        third.close()
        third.stop()
    finally:
        first.stop(), second.stop()


def test_a_reconnection_resyncs_every_views_sessions(hub: SharedEventStreams) -> None:
    server = _Server()
    server.statuses = {"/srv/acme/slot-0": {"ses_acme": {"type": "busy"}}}
    acme, globex = _Wave(hub, server.client()), _Wave(hub, server.client())
    try:
        ours = acme.subscribe("ses_acme", "/srv/acme/slot-0")
        theirs = globex.subscribe("ses_globex", "/srv/globex/slot-0")
        server.drop()
        _until(lambda: len(server.connections) == 2)
        resynced = acme.next_event(ours), globex.next_event(theirs)
        assert [(e.session_id, e.properties.get("resync")) for e in resynced] == [
            ("ses_acme", True),
            ("ses_globex", True),
        ]
        assert [e.status.type if e.status else None for e in resynced] == ["busy", "idle"]
        assert acme.view.connected.is_set() and acme.view.seconds_down() == 0.0
        assert acme.pending(ours) == [] and globex.pending(theirs) == []
    finally:
        acme.close(), globex.close()
        acme.stop(), globex.stop()


def test_a_wave_gone_without_closing_its_view_does_not_stop_the_others_events(
    hub: SharedEventStreams,
) -> None:
    server = _Server()
    gone, acme = _Wave(hub, server.client()), _Wave(hub, server.client())
    try:
        gone.subscribe("ses_gone", "/srv/gone/slot-0")
        gone.stop()  # its loop closed, its view never closed
        ours = acme.subscribe("ses_acme", "/srv/acme/slot-0")
        server.send(_envelope("/srv/gone/slot-0", "session.idle", "ses_gone"))
        server.send(_envelope("/srv/acme/slot-0", "session.idle", "ses_acme"))
        assert acme.next_event(ours).session_id == "ses_acme"
    finally:
        acme.close()
        acme.stop()


def test_the_client_gives_views_of_the_process_stream() -> None:
    server = _Server()

    async def run() -> tuple[bool, int]:
        async with server.client() as one, server.client() as other:
            first, second = one.shared_event_stream(), other.shared_event_stream()
            await first.start(wait_seconds=WAIT)
            await second.start(wait_seconds=WAIT)
            connected = first.connected.is_set() and second.connected.is_set()
            await first.close()
            await second.close()
            return connected, len(server.connections)

    assert asyncio.run(run()) == (True, 1)
