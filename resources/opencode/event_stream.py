"""An OpenCode server's event stream, shared by every session supervised there.

Two scopes: `GET /event?directory=` carries the events of the sessions working in that one
directory (a tenant's worktree, the server's own workspace); `GET /global/event` those of every
directory, each wrapped with its directory: one stream then serves all the sessions in workspaces
of their own, where a stream per session would cost the server a connection and its CPU each
(measured, `bench.instance_warm_up`) and the session's start a connection's wait. On a server
shared by tenants it carries the others' events too: they reach no queue (routed by the session
ids this process subscribed). Routing never goes by the envelope's directory: the server names
the directory as it resolved it (a symlink on the way resolved), not as it was asked.

Events are routed to per-session queues. When the stream drops it reconnects with backoff and
re-syncs each subscribed session from `GET /session/status` of the directory it works in (a
synthetic `session.status` event marked `resync`), so a session that went idle while we were
disconnected is not waited on forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Container
from typing import Any, Protocol

import httpx
from httpx_sse import aconnect_sse

from resources.opencode.client import OpenCodeClient, shared_ssl_context
from resources.opencode.models import ServerEvent, session_id_of

logger = logging.getLogger(__name__)
# The server sends `server.heartbeat` every few seconds: silence this long means a dead stream.
READ_TIMEOUT_SECONDS = 30.0
MAX_BACKOFF_SECONDS = 5.0
# Directories re-synced at once after a reconnection (one `GET /session/status` each).
RESYNC_CONCURRENCY = 8


_PAYLOAD_KEY = '"payload":'
_SYNC_PAYLOAD = '{"type":"sync"'


def _sync_copy(data: str) -> bool:
    """Whether an envelope holds the server's `sync` copy of an event (it names no session; half
    of the stream), read from its head without parsing it. The first `"payload":` is the
    envelope's own (a quote inside a string value is escaped)."""
    payload = data.find(_PAYLOAD_KEY)
    return payload > 0 and data.startswith(_SYNC_PAYLOAD, payload + len(_PAYLOAD_KEY))


_SESSION_KEY = '"sessionID"'
_SESSION_KEY_AS_WRITTEN = '"sessionID":"'


def names_a_followed_session(data: str, followed: Container[str]) -> bool:
    """Whether an event's text names a session in `followed`, read without parsing it. On a
    server several waves (tenants) share, most of each wave's stream is the others' sessions:
    parsing only its own spares it the rest. A key starts with the only unescaped quotes a string
    value cannot hold, so a text quoting another session's id does not count; a key written
    otherwise than the server writes it (`"sessionID":"...`, no spaces) is left to the parse."""
    start = data.find(_SESSION_KEY_AS_WRITTEN)
    if start < 0:
        return _SESSION_KEY in data
    while start >= 0:
        start += len(_SESSION_KEY_AS_WRITTEN)
        end = data.find('"', start)
        if data[start:end] in followed:
            return True
        start = data.find(_SESSION_KEY_AS_WRITTEN, end)
    return False


class EventSink(Protocol):
    """Where a subscribed session's events go: its queue, or a hand-over to another loop's."""

    def put_nowait(self, event: ServerEvent, /) -> None: ...


class ServerEventStream:
    def __init__(
        self,
        client: OpenCodeClient,
        directory: str | None = None,
        *,
        every_directory: bool = False,
        transport: httpx.AsyncBaseTransport | None = None,
        on_connection: Callable[[bool], None] | None = None,
    ) -> None:
        """Scoped to `directory` (None: the server's own), or of `every_directory`;
        `on_connection` is told each time the stream connects (True) or drops (False)."""
        self._client = client
        self._on_connection = on_connection
        self._directory = directory
        self._every_directory = every_directory
        self._http = httpx.AsyncClient(
            base_url=client.base_url,
            auth=client.auth,
            timeout=httpx.Timeout(READ_TIMEOUT_SECONDS, connect=3.0),
            verify=shared_ssl_context(),
            transport=transport,
        )
        self._queues: dict[str, EventSink] = {}
        # Where each subscribed session works (its re-sync asks that directory).
        self._directories: dict[str, str | None] = {}
        # Subscriptions may change from other threads (`shared_event_stream`); routing reads
        # one session's sink at a time, a re-sync a copy taken under this lock.
        self._subscriptions = threading.Lock()
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()
        self.down_since: float | None = None

    async def start(self, wait_seconds: float = 10.0) -> None:
        """Open the stream; returns once connected or after `wait_seconds` (it keeps trying)."""
        if self._task is None:
            self.down_since = time.monotonic()
            self._task = asyncio.create_task(self._run(), name=f"events {self._client.base_url}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.connected.wait(), wait_seconds)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._http.aclose()

    def subscribe(
        self, session_id: str, directory: str | None = None
    ) -> asyncio.Queue[ServerEvent]:
        """The session's queue (the same on every call); `directory`, where it works, is kept
        from the first call that names it (default: the stream's directory)."""
        with self._subscriptions:
            if self._directories.get(session_id) is None:
                self._directories[session_id] = directory or self._directory
            queue = self._queues.get(session_id)
            if not isinstance(queue, asyncio.Queue):  # new here, or attached elsewhere
                queue = self._queues[session_id] = asyncio.Queue()
        return queue

    def unsubscribe(self, session_id: str) -> None:
        with self._subscriptions:
            self._queues.pop(session_id, None)
            self._directories.pop(session_id, None)

    def attach(self, session_id: str, directory: str | None, sink: EventSink) -> None:
        """The session's events go to `sink` from now on (a later attach takes it over);
        `directory` as in `subscribe`."""
        with self._subscriptions:
            if self._directories.get(session_id) is None:
                self._directories[session_id] = directory or self._directory
            self._queues[session_id] = sink

    def detach(self, session_id: str, sink: EventSink) -> None:
        """Stop sending the session's events to `sink`: nothing if it went elsewhere since."""
        with self._subscriptions:
            if self._queues.get(session_id) is sink:
                del self._queues[session_id]
                self._directories.pop(session_id, None)

    def seconds_down(self) -> float:
        """How long the stream has been disconnected (0 while connected)."""
        return 0.0 if self.down_since is None else time.monotonic() - self.down_since

    async def _run(self) -> None:
        backoff = 0.2
        while True:
            try:
                path, params = "/event", {"directory": self._directory} if self._directory else None
                if self._every_directory:
                    path, params = "/global/event", None
                async with aconnect_sse(self._http, "GET", path, params=params) as source:
                    source.response.raise_for_status()
                    self.connected.set()
                    self.down_since = None
                    if self._on_connection is not None:
                        self._on_connection(True)
                    backoff = 0.2
                    await self._resync()
                    async for message in source.aiter_sse():
                        if message.data:
                            self._route(message.data)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # any failure of the stream means: reconnect
                logger.info("event stream of %s dropped: %r", self._client.base_url, error)
            if self.connected.is_set():
                self.connected.clear()
                self.down_since = time.monotonic()
                if self._on_connection is not None:
                    self._on_connection(False)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    def _route(self, data: str) -> None:
        if not names_a_followed_session(data, self._queues):
            return  # a server event, or a session not followed here
        if self._every_directory and _sync_copy(data):
            return
        try:
            found: Any = json.loads(data)
            if self._every_directory:  # `{"directory": ..., "payload": <the event>}`
                found = found["payload"]
            queue = self._queues.get(session_id_of(found.get("properties") or {}) or "")
            if queue is None:
                return  # a server event, or a session not followed here
            queue.put_nowait(ServerEvent.model_validate(found))
        except (ValueError, KeyError, TypeError, AttributeError):
            logger.warning("unreadable event from %s: %.200s", self._client.base_url, data)

    async def _resync(self) -> None:
        """A `session.status` for each subscribed session, from its directory's statuses."""
        with self._subscriptions:
            subscribed = list(self._directories.items())
        directories = {directory for _, directory in subscribed}
        if not directories:
            return
        bound = asyncio.Semaphore(RESYNC_CONCURRENCY)

        async def statuses_of(directory: str | None) -> dict[str, Any]:
            async with bound:
                return await self._client.statuses(directory=directory)

        found = await asyncio.gather(*(statuses_of(directory) for directory in directories))
        statuses = dict(zip(directories, found, strict=True))
        for session_id, directory in subscribed:
            queue = self._queues.get(session_id)
            if queue is None:
                continue
            status = statuses.get(directory, {}).get(session_id)
            properties = {
                "sessionID": session_id,
                "status": status.model_dump(exclude_none=True) if status else {"type": "idle"},
                "resync": True,
            }
            queue.put_nowait(ServerEvent(type="session.status", properties=properties))
