"""One stream of every directory per agent server in this process, shared by all its waves.

Waves run in threads of the run worker, each on an event loop of its own. When each read
`GET /global/event` of a server on a connection of its own, every event was sent, read and
prefiltered once per wave (tenant): ~0.08 CPU-s per stream through a 300-session burst for its
reader (the servers' own cost was not measurable at ten readers per server:
`INDORCH_BENCH_FLOOR_OTHER_READERS`, README → Performance), so a run worker's reading grew with
its tenants. Here one stream per server and credentials is read on a thread of its own, and
each wave holds a `SharedStreamView`: on its own loop it gets the events of the sessions it
subscribed, and no others (routed by session id, as `ServerEventStream` routes). The connection
closes with the last view.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from resources.opencode.client import OpenCodeClient
from resources.opencode.event_stream import ServerEventStream
from resources.opencode.models import ServerEvent

logger = logging.getLogger(__name__)

# (base URL, a digest of the password, the test transport's id): streams are shared only
# between clients that would be let in as the same caller.
_StreamKey = tuple[str, str, int]


class _LoopQueue:
    """A session's queue on its wave's loop, fed from the stream's thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[ServerEvent] = asyncio.Queue()

    def put_nowait(self, event: ServerEvent, /) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, event)
        except RuntimeError:  # its loop is closed: the wave is gone, nobody reads this queue
            logger.debug("event for a closed wave's loop dropped")


@dataclass
class _Shared:
    stream: ServerEventStream
    client: OpenCodeClient
    views: set[SharedStreamView] = field(default_factory=set)

    def forget_gone_views(self) -> None:
        """Drop the views of waves whose loop closed without leaving (a killed run's thread)."""
        self.views = {v for v in self.views if not v.loop_closed()}


class SharedEventStreams:
    """The process's shared streams and the thread (with its event loop) that reads them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._shared: dict[_StreamKey, _Shared] = {}

    def view(self, client: OpenCodeClient) -> SharedStreamView:
        """A new view (not yet started) of the stream of every directory on `client`'s server."""
        return SharedStreamView(self, client)

    def shutdown(self) -> None:
        """Close every stream and stop the thread (tests; the process's own ends with it)."""
        with self._lock:
            shared, self._shared = list(self._shared.values()), {}
            loop, self._loop, thread, self._thread = self._loop, None, self._thread, None
        if loop is None:
            return
        for one in shared:
            with contextlib.suppress(Exception):
                self._run(loop, _close(one)).result(10.0)
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(10.0)
        loop.close()

    def join(self, view: SharedStreamView) -> _Shared:
        with self._lock:
            if self._pid != os.getpid():  # a forked child: the parent's thread is not here
                self._pid, self._loop, self._thread, self._shared = os.getpid(), None, None, {}
            loop = self._running_loop()
            key = _key_of(view.client)
            shared = self._shared.get(key)
            if shared is None:
                reader = view.client.copy()  # used on this module's loop only
                shared = _Shared(
                    stream=reader.global_event_stream(
                        on_connection=lambda up: self._connection_changed(key, up)
                    ),
                    client=reader,
                )
                self._shared[key] = shared
                self._run(loop, shared.stream.start(wait_seconds=0.0))
            shared.forget_gone_views()
            shared.views.add(view)
            view.connection_changed(shared.stream.connected.is_set())
            return shared

    def leave(self, view: SharedStreamView) -> Future[None] | None:
        """The view let go; the connection closed when it was the last (its closing returned)."""
        with self._lock:
            key = _key_of(view.client)
            shared = self._shared.get(key)
            if shared is None or view not in shared.views:
                return None
            shared.views.discard(view)
            shared.forget_gone_views()
            if shared.views or self._loop is None:
                return None
            del self._shared[key]
            return self._run(self._loop, _close(shared))

    def _connection_changed(self, key: _StreamKey, up: bool) -> None:
        with self._lock:
            shared = self._shared.get(key)
            views = list(shared.views) if shared is not None else []
        for view in views:
            view.connection_changed(up)

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            self._thread = threading.Thread(
                target=loop.run_forever, name="shared-event-streams", daemon=True
            )
            self._thread.start()
            self._loop = loop
        return self._loop

    @staticmethod
    def _run(loop: asyncio.AbstractEventLoop, work: Coroutine[Any, Any, None]) -> Future[None]:
        return asyncio.run_coroutine_threadsafe(work, loop)


async def _close(shared: _Shared) -> None:
    await shared.stream.close()
    await shared.client.aclose()


def _key_of(client: OpenCodeClient) -> _StreamKey:
    secret = hashlib.sha256((client.password or "").encode()).hexdigest()
    return client.base_url, secret, id(client.transport) if client.transport else 0


class SharedStreamView:
    """`services.supervision.agent_server.AgentEventStream` on the process's shared stream."""

    def __init__(self, streams: SharedEventStreams, client: OpenCodeClient) -> None:
        self._streams = streams
        self.client = client
        self.connected = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._shared: _Shared | None = None
        self._sessions: dict[str, _LoopQueue] = {}

    async def start(self, wait_seconds: float = 10.0) -> None:
        """Join the stream; returns once connected or after `wait_seconds` (it keeps trying)."""
        self._joined()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.connected.wait(), wait_seconds)

    async def close(self) -> None:
        shared, self._shared = self._shared, None
        if shared is None:
            return
        for session_id, sink in self._sessions.items():
            shared.stream.detach(session_id, sink)
        self._sessions.clear()
        closing = self._streams.leave(self)
        if closing is not None:
            await asyncio.wrap_future(closing)

    def subscribe(
        self, session_id: str, directory: str | None = None
    ) -> asyncio.Queue[ServerEvent]:
        """The session's queue on this view's loop (the same on every call)."""
        shared = self._joined()
        sink = self._sessions.get(session_id)
        if sink is None:
            sink = self._sessions[session_id] = _LoopQueue(asyncio.get_running_loop())
        shared.stream.attach(session_id, directory, sink)
        return sink.queue

    def unsubscribe(self, session_id: str) -> None:
        """This view's subscription ended; another view's of the same session is left alone."""
        sink = self._sessions.pop(session_id, None)
        if sink is not None and self._shared is not None:
            self._shared.stream.detach(session_id, sink)

    def seconds_down(self) -> float:
        if self._shared is None:
            return 0.0
        return self._shared.stream.seconds_down()

    def connection_changed(self, up: bool) -> None:
        """Told by the stream's thread (or at joining) that the stream connected or dropped."""
        if self._loop is None:
            return
        mark = self.connected.set if up else self.connected.clear
        with contextlib.suppress(RuntimeError):  # its loop closed: the wave is gone
            self._loop.call_soon_threadsafe(mark)

    def loop_closed(self) -> bool:
        return self._loop is not None and self._loop.is_closed()

    def _joined(self) -> _Shared:
        if self._shared is None:
            self._loop = asyncio.get_running_loop()
            self._shared = self._streams.join(self)
        return self._shared


_PROCESS_STREAMS = SharedEventStreams()


def shared_view(client: OpenCodeClient) -> SharedStreamView:
    """A view of this process's stream of every directory on `client`'s server."""
    return _PROCESS_STREAMS.view(client)
