"""Following one session's events live: from Redis when it answers, from the database otherwise.

The database is the truth and Redis the fast path (ARCHITECTURE.md §2), so the feed treats the
stream as a hint that something happened and the database as the record:

- joining the stream: note the stream's newest entry first, then read the history from the
  database; an event published after that entry comes from the stream, and one published before
  it was committed before it, so the database has it — nothing falls between the two;
- a gap in the stream's seqs (a publish dropped during an outage) is filled from the database;
- every `resync_interval` seconds the database is read as well, for events whose publish was lost
  with nothing after them to reveal the gap;
- while Redis is unavailable (`RedisUnavailable`) the feed polls the database, and it rejoins the
  stream as above once the reader answers again (the reader's backoff keeps the probes rare);
- each event is yielded once, in seq order: it is new when it is of this session and its seq is
  above the last one yielded, which de-duplicates by (session_id, seq) across both sources.

If the stream shows a seq the database cannot fill the gap to, the stream's event is taken anyway
(it was committed before it was published) and the follower skips the missing ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from enum import StrEnum
from typing import Protocol

from domain.events import SessionEvent
from resources.redis.link import RedisUnavailable
from resources.redis.live_events import StreamEntry

EventsAfter = Callable[[int], Sequence[SessionEvent]]
DEFAULT_BLOCK_MS = 1000
DEFAULT_POLL_INTERVAL_SECONDS = 1.0
DEFAULT_RESYNC_INTERVAL_SECONDS = 10.0


class SessionStreamReader(Protocol):
    """What the feed needs of `RedisEventReader`."""

    def last_session_entry_id(self, tenant_id: str, session_id: str) -> str: ...

    def read_session_events(
        self, tenant_id: str, session_id: str, after_id: str = ..., block_ms: int | None = ...
    ) -> list[StreamEntry]: ...


class FeedSource(StrEnum):
    REDIS = "redis"
    DATABASE = "database"


class LiveEventFeed:
    """One session's events as they happen.

    `events_after(seq)` reads the database: the session's events with a greater seq, in order
    (``SessionRepository.events(session_id, after_seq=seq)`` in the tenant's scope). `reader` is
    None when Redis is not configured: the feed then only polls. `after_seq` skips what the
    caller has shown already.
    """

    def __init__(
        self,
        tenant_id: str,
        session_id: str,
        events_after: EventsAfter,
        reader: SessionStreamReader | None = None,
        *,
        after_seq: int = 0,
        block_ms: int = DEFAULT_BLOCK_MS,
        poll_interval: float = DEFAULT_POLL_INTERVAL_SECONDS,
        resync_interval: float | None = DEFAULT_RESYNC_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.tenant_id = tenant_id
        self.session_id = session_id
        self._events_after = events_after
        self._reader = reader
        self._last_seq = after_seq
        self._block_ms = block_ms
        self._poll_interval = poll_interval
        self._resync_interval = resync_interval
        self._clock = clock
        self._sleep = sleep
        self._cursor: str | None = None  # position in the session stream; None: not joined
        self._source = FeedSource.DATABASE
        self._last_database_read = clock()

    @property
    def source(self) -> FeedSource:
        """Where the last poll looked for new events."""
        return self._source

    @property
    def last_seq(self) -> int:
        return self._last_seq

    def poll(self) -> list[SessionEvent]:
        """The events not yielded yet, in seq order; waits up to `block_ms` on the stream."""
        if self._reader is None:
            return self._catch_up()
        try:
            if self._cursor is None:
                return self._join_stream(self._reader)
            entries = self._reader.read_session_events(
                self.tenant_id, self.session_id, after_id=self._cursor, block_ms=self._block_ms
            )
        except RedisUnavailable:
            self._cursor = None
            self._source = FeedSource.DATABASE
            return self._catch_up()
        if entries:
            self._cursor = entries[-1].entry_id
        fresh = self._take_live(entry.event for entry in entries)
        if self._resync_due():
            fresh.extend(self._catch_up())
        return fresh

    def follow(self) -> Iterator[SessionEvent]:
        """Every event as it comes, without end: leave the loop to stop. On the database, waits
        `poll_interval` between polls that found nothing; on Redis the blocking read paces it."""
        while True:
            events = self.poll()
            yield from events
            if not events and self._source is FeedSource.DATABASE:
                self._sleep(self._poll_interval)

    def _join_stream(self, reader: SessionStreamReader) -> list[SessionEvent]:
        self._cursor = reader.last_session_entry_id(self.tenant_id, self.session_id)
        self._source = FeedSource.REDIS
        return self._catch_up()

    def _catch_up(self) -> list[SessionEvent]:
        """Everything the database has after the last seq yielded (in batches, until no more)."""
        self._last_database_read = self._clock()
        fresh: list[SessionEvent] = []
        while True:
            taken = self._take_recorded(self._events_after(self._last_seq))
            if not taken:
                return fresh
            fresh.extend(taken)

    def _take_recorded(self, events: Iterable[SessionEvent]) -> list[SessionEvent]:
        taken: list[SessionEvent] = []
        for event in sorted(events, key=lambda e: e.seq):
            if self._is_new(event):
                taken.append(event)
                self._last_seq = event.seq
        return taken

    def _take_live(self, events: Iterable[SessionEvent]) -> list[SessionEvent]:
        taken: list[SessionEvent] = []
        for event in sorted(events, key=lambda e: e.seq):
            if not self._is_new(event):
                continue
            if event.seq > self._last_seq + 1:
                taken.extend(self._catch_up())  # the stream missed some: the database has them
                if not self._is_new(event):
                    continue
            taken.append(event)
            self._last_seq = event.seq
        return taken

    def _is_new(self, event: SessionEvent) -> bool:
        return event.session_id == self.session_id and event.seq > self._last_seq

    def _resync_due(self) -> bool:
        return (
            self._resync_interval is not None
            and self._clock() - self._last_database_read >= self._resync_interval
        )
