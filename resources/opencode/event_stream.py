"""One `GET /event` stream per OpenCode server (and workspace directory), shared by every
session supervised there. The server scopes `/event` to one directory: a stream opened with
`directory` carries the events of the sessions working in it, and no one else's.

Events are routed to per-session queues. When the stream drops it reconnects with backoff and
re-syncs each subscribed session from `GET /session/status` (a synthetic `session.status` event
marked `resync`), so a session that went idle while we were disconnected is not waited on forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time

import httpx
from httpx_sse import aconnect_sse

from resources.opencode.client import OpenCodeClient, shared_ssl_context
from resources.opencode.models import ServerEvent

logger = logging.getLogger(__name__)
# The server sends `server.heartbeat` every few seconds: silence this long means a dead stream.
READ_TIMEOUT_SECONDS = 30.0
MAX_BACKOFF_SECONDS = 5.0


class ServerEventStream:
    def __init__(self, client: OpenCodeClient, directory: str | None = None) -> None:
        self._client = client
        self._directory = directory
        self._http = httpx.AsyncClient(
            base_url=client.base_url,
            auth=client.auth,
            timeout=httpx.Timeout(READ_TIMEOUT_SECONDS, connect=3.0),
            verify=shared_ssl_context(),
        )
        self._queues: dict[str, asyncio.Queue[ServerEvent]] = {}
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

    def subscribe(self, session_id: str) -> asyncio.Queue[ServerEvent]:
        return self._queues.setdefault(session_id, asyncio.Queue())

    def unsubscribe(self, session_id: str) -> None:
        self._queues.pop(session_id, None)

    def seconds_down(self) -> float:
        """How long the stream has been disconnected (0 while connected)."""
        return 0.0 if self.down_since is None else time.monotonic() - self.down_since

    async def _run(self) -> None:
        backoff = 0.2
        while True:
            try:
                params = {"directory": self._directory} if self._directory else None
                async with aconnect_sse(self._http, "GET", "/event", params=params) as source:
                    source.response.raise_for_status()
                    self.connected.set()
                    self.down_since = None
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
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    def _route(self, data: str) -> None:
        try:
            event = ServerEvent.model_validate(json.loads(data))
        except ValueError:
            logger.warning("unreadable event from %s: %.200s", self._client.base_url, data)
            return
        session_id = event.session_id
        if session_id and session_id in self._queues:
            self._queues[session_id].put_nowait(event)

    async def _resync(self) -> None:
        if not self._queues:
            return
        statuses = await self._client.statuses(directory=self._directory)
        for session_id, queue in list(self._queues.items()):
            status = statuses.get(session_id)
            properties = {
                "sessionID": session_id,
                "status": status.model_dump(exclude_none=True) if status else {"type": "idle"},
                "resync": True,
            }
            queue.put_nowait(ServerEvent(type="session.status", properties=properties))
