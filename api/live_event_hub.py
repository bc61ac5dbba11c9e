"""One reader per followed stream, shared by every SSE client of this process.

A thousand clients watching one session must not mean a thousand Redis connections and database
polls: the hub runs one *source* thread per followed key (a session, or a tenant) and fans each
batch of events out to the subscribers' queues on the event loop. A source stops by itself once
its last subscriber has left (within one blocking read).

- a session's source is `resources.redis.live_event_feed.LiveEventFeed`: Redis when it answers,
  the database otherwise, gaps filled from the database, each event once in seq order;
- a tenant's source reads the tenant's Redis stream and, every `resync_interval` (every
  `poll_interval` while Redis is down), the database's record after its *floor*: the newest row
  id it saw at least `grace_seconds` ago. Events whose transaction commits later than that after
  a later row id became visible are beyond what it promises (see README, live events). The floor
  is the tenant's *horizon*: readers move their cursors' anchors up to it.

A source may hand a subscriber an event twice or (the tenant's) out of seq order across
sessions; each subscriber keeps its own cursor and takes each event once (`api.event_streams`).
A subscriber whose queue fills (a client that does not read) is marked `overflowed` and catches
up from the database instead of holding the batches.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from domain.events import SessionEvent
from resources.redis.link import RedisUnavailable
from resources.redis.live_event_feed import FeedSource, LiveEventFeed
from resources.redis.live_events import RedisEventReader
from services.live_event_log import PAGE, LiveEventLog

logger = logging.getLogger(__name__)

QUEUE_BATCHES = 1024
BLOCK_MS = 1000
POLL_INTERVAL_SECONDS = 0.5
RESYNC_INTERVAL_SECONDS = 5.0
GRACE_SECONDS = 30.0
KEEPALIVE_SECONDS = 15.0
BASELINE_CACHE = 4096

Key = tuple[str, str]  # ("session", "<tenant>/<session>") or ("tenant", "<tenant>")


class Subscription:
    """One client's queue of event batches; lives on the event loop."""

    def __init__(self, key: Key, maxsize: int = QUEUE_BATCHES) -> None:
        self.key = key
        self.overflowed = False
        self._queue: asyncio.Queue[list[SessionEvent]] = asyncio.Queue(maxsize)

    def offer(self, events: list[SessionEvent]) -> None:
        if self.overflowed:
            return
        try:
            self._queue.put_nowait(events)
        except asyncio.QueueFull:
            self.overflowed = True  # the reader catches up from the database
            while not self._queue.empty():
                self._queue.get_nowait()

    def take_overflow(self) -> bool:
        """Whether batches were dropped since the last call (the reader must catch up)."""
        overflowed, self.overflowed = self.overflowed, False
        return overflowed

    async def next(self) -> list[SessionEvent] | None:
        """The next batch; None on the hub's keepalive tick or after an overflow. (One ticker
        for all, rather than a timeout per wait: a timer per reader per event cost a fifth of
        the fan-out's CPU.)"""
        if self.overflowed:
            return None
        batch = await self._queue.get()
        return batch or None


@dataclass
class _Floor:
    """The newest row id seen at least `grace` seconds ago, from samples taken at each poll."""

    grace: float
    value: int  # where the source reads the database from
    horizon: int | None = None  # the same, once a sample has aged `grace` (None: not yet)
    samples: deque[tuple[float, int]] = field(default_factory=deque)

    def sample(self, now: float, newest: int) -> None:
        self.samples.append((now, newest))
        while self.samples and self.samples[0][0] <= now - self.grace:
            self.value = max(self.value, self.samples.popleft()[1])
            self.horizon = self.value


class LiveEventHub:
    def __init__(
        self,
        log: LiveEventLog,
        redis_url: str | None,
        *,
        block_ms: int = BLOCK_MS,
        poll_interval: float = POLL_INTERVAL_SECONDS,
        resync_interval: float = RESYNC_INTERVAL_SECONDS,
        grace_seconds: float = GRACE_SECONDS,
        keepalive_seconds: float = KEEPALIVE_SECONDS,
    ) -> None:
        self.log = log
        self._reader = RedisEventReader(redis_url) if redis_url else None
        self._block_ms = block_ms
        self._poll_interval = poll_interval
        self._resync_interval = resync_interval
        self._grace = grace_seconds
        self._keepalive = keepalive_seconds
        self._ticker: asyncio.Task[None] | None = None
        self._lock = threading.Lock()
        self._subscribers: dict[Key, set[Subscription]] = {}
        self._sources: dict[Key, threading.Thread] = {}
        self._floors: dict[str, _Floor] = {}
        self._baselines: dict[tuple[str, str, int], int] = {}
        self._closed = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- subscribers (on the event loop) --------------------------------------------------------

    def subscribe_session(
        self, tenant_id: str, session_id: str, seen_seq: int | None = None
    ) -> Subscription:
        """`seen_seq`: the session's newest seq read before this call; a source started now
        follows from it. Taken when the source's thread runs instead, an event recorded
        between the subscriber's history read and that moment was neither in the history nor
        followed (found under load: a reader waited for it forever)."""
        key = ("session", f"{tenant_id}/{session_id}")
        return self._subscribe(
            key, lambda: self._follow_session(key, tenant_id, session_id, seen_seq)
        )

    def subscribe_tenant(self, tenant_id: str) -> Subscription:
        key = ("tenant", tenant_id)
        return self._subscribe(key, lambda: self._follow_tenant(key, tenant_id))

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            subscribers = self._subscribers.get(subscription.key)
            if subscribers is not None:
                subscribers.discard(subscription)

    def tenant_horizon(self, tenant_id: str) -> int | None:
        """A row id every event of the tenant below which its source has seen (None: no source)."""
        floor = self._floors.get(tenant_id)
        return floor.horizon if floor else None

    def baseline(self, tenant_id: str, session_id: str, anchor: int) -> int:
        """The session's newest seq up to row id `anchor`, cached (readers share anchors)."""
        key = (tenant_id, session_id, anchor)
        if key not in self._baselines:
            if len(self._baselines) >= BASELINE_CACHE:
                self._baselines.clear()
            found = self.log.seqs_up_to(tenant_id, [session_id], anchor)
            self._baselines[key] = found[session_id]
        return self._baselines[key]

    def subscribers(self) -> int:
        with self._lock:
            return sum(len(s) for s in self._subscribers.values())

    def sources(self) -> int:
        """Source threads running now (one per followed session or tenant)."""
        with self._lock:
            return len(self._sources)

    def close(self) -> None:
        self._closed.set()
        ticker, loop = self._ticker, self._loop
        if ticker is not None and loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(ticker.cancel)
        for thread in list(self._sources.values()):
            thread.join(timeout=self._block_ms / 1000 + 2)
        if self._reader is not None:
            self._reader.close()

    def _subscribe(self, key: Key, run: Callable[[], None]) -> Subscription:
        self._loop = asyncio.get_running_loop()
        if self._ticker is None or self._ticker.done():
            self._ticker = self._loop.create_task(self._tick())
        subscription = Subscription(key)
        with self._lock:
            self._subscribers.setdefault(key, set()).add(subscription)
            if key not in self._sources:
                thread = threading.Thread(
                    target=self._run, args=(key, run), name=f"live-{key[0]}", daemon=True
                )
                self._sources[key] = thread
                thread.start()
        return subscription

    async def _tick(self) -> None:
        """Every `keepalive_seconds`, an empty batch to every subscriber: its keepalive."""
        while not self._closed.is_set():
            await asyncio.sleep(self._keepalive)
            for subscribers in list(self._subscribers.values()):
                for subscription in list(subscribers):
                    subscription.offer([])

    # -- sources (one thread each) --------------------------------------------------------------

    def _run(self, key: Key, run: Callable[[], None]) -> None:
        try:
            run()
        except Exception:
            logger.exception("live event source %s stopped", key[0])
        finally:
            with self._lock:
                if self._sources.get(key) is threading.current_thread():
                    del self._sources[key]

    def _wanted(self, key: Key) -> bool:
        """Whether the source of `key` should go on; when not, it is forgotten atomically, so a
        subscriber that arrives next starts a new one."""
        with self._lock:
            if self._subscribers.get(key) and not self._closed.is_set():
                return True
            self._subscribers.pop(key, None)
            self._sources.pop(key, None)
            return False

    def _broadcast(self, key: Key, events: list[SessionEvent]) -> None:
        if events and self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._fan_out, key, events)

    def _fan_out(self, key: Key, events: list[SessionEvent]) -> None:
        for subscription in list(self._subscribers.get(key, ())):
            subscription.offer(events)

    def _pause(self, seconds: float) -> None:
        self._closed.wait(seconds)

    def _follow_session(
        self, key: Key, tenant_id: str, session_id: str, seen_seq: int | None
    ) -> None:
        if seen_seq is None:
            seen_seq = self.log.latest_seq(tenant_id, session_id)
        feed = LiveEventFeed(
            tenant_id,
            session_id,
            lambda seq: self.log.session_events(tenant_id, session_id, seq),
            self._reader,
            after_seq=seen_seq,
            block_ms=self._block_ms,
            resync_interval=self._resync_interval,
        )
        while self._wanted(key):
            try:
                events = feed.poll()
            except Exception:
                logger.exception("following session %s of %s", session_id, tenant_id)
                self._pause(self._poll_interval * 4)
                continue
            self._broadcast(key, events)
            if not events and feed.source is FeedSource.DATABASE:
                self._pause(self._poll_interval)

    def _follow_tenant(self, key: Key, tenant_id: str) -> None:
        source = _TenantSource(self, key, tenant_id)
        self._floors[tenant_id] = source.floor
        try:
            source.run()
        finally:
            if self._floors.get(tenant_id) is source.floor:
                del self._floors[tenant_id]


class _TenantSource:
    """The tenant's stream from Redis with the database's record behind it (see module doc)."""

    def __init__(self, hub: LiveEventHub, key: Key, tenant_id: str) -> None:
        self.hub = hub
        self.key = key
        self.tenant_id = tenant_id
        self.floor = _Floor(hub._grace, hub.log.newest_event_id(tenant_id))
        self.seen: dict[tuple[str, int], float] = {}
        self.cursor: str | None = None  # the Redis stream's entry id; None: not joined
        self.last_database_read = 0.0

    def run(self) -> None:
        hub = self.hub
        while hub._wanted(self.key):
            try:
                fresh = self._poll()
            except Exception:
                logger.exception("following the events of %s", self.tenant_id)
                hub._pause(hub._poll_interval * 4)
                continue
            hub._broadcast(self.key, fresh)
            if self.cursor is None and not fresh:
                hub._pause(hub._poll_interval)

    def _poll(self) -> list[SessionEvent]:
        reader = self.hub._reader
        if reader is None:
            return self._read_database()
        try:
            if self.cursor is None:
                self.cursor = reader.last_tenant_entry_id(self.tenant_id)
                return self._read_database()
            entries = reader.read_tenant_events(
                self.tenant_id, after_id=self.cursor, block_ms=self.hub._block_ms
            )
        except RedisUnavailable:
            self.cursor = None
            return self._read_database()
        if entries:
            self.cursor = entries[-1].entry_id
        fresh = self._unseen(entry.event for entry in entries)
        if time.monotonic() - self.last_database_read >= self.hub._resync_interval:
            fresh.extend(self._read_database())
        return fresh

    def _read_database(self) -> list[SessionEvent]:
        now = time.monotonic()
        self.last_database_read = now
        after = newest = self.floor.value
        fresh: list[SessionEvent] = []
        while True:
            page = self.hub.log.tenant_events(self.tenant_id, after_id=after)
            fresh.extend(self._unseen(event for _, event in page))
            if page:
                after = newest = page[-1][0]
            if len(page) < PAGE:
                break
        self.floor.sample(now, newest)
        horizon = now - 2 * self.hub._grace
        self.seen = {k: at for k, at in self.seen.items() if at > horizon}
        return fresh

    def _unseen(self, events: object) -> list[SessionEvent]:
        now = time.monotonic()
        fresh = []
        for event in events:  # type: ignore[attr-defined]
            key = (event.session_id, event.seq)
            if key not in self.seen:
                self.seen[key] = now
                fresh.append(event)
        return fresh
