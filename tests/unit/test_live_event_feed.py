"""`LiveEventFeed` yields one session's events exactly once and in order, whichever source has them.

Redis (a fake reader here) is the fast path; the database (a list here) is the truth: history,
gaps in the stream, periods without Redis and a periodic resync all come from it. Duplicates
between the two sources are dropped by (session_id, seq).
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from domain.events import SessionEvent
from resources.redis.link import RedisUnavailable
from resources.redis.live_event_feed import FeedSource, LiveEventFeed
from resources.redis.live_events import StreamEntry

TENANT = "acme"
SESSION = "IND-1"
AT = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def event(seq: int, session_id: str = SESSION) -> SessionEvent:
    return SessionEvent(
        session_id=session_id, tenant_id=TENANT, seq=seq, event_type="session.status_changed", at=AT
    )


class FakeDatabase:
    """The durable history: `events_after` is what `SessionRepository.events` answers."""

    def __init__(self) -> None:
        self.events: list[SessionEvent] = []
        self.reads = 0

    def record(self, *seqs: int) -> None:
        self.events.extend(event(seq) for seq in seqs)

    def events_after(self, after_seq: int) -> list[SessionEvent]:
        self.reads += 1
        return sorted((e for e in self.events if e.seq > after_seq), key=lambda e: e.seq)


class FakeStream:
    """The session's Redis stream; `down` makes every call fail as a dead Redis does."""

    def __init__(self) -> None:
        self.entries: list[StreamEntry] = []
        self.down = False

    def publish(self, *events: SessionEvent) -> None:
        for item in events:
            self.entries.append(StreamEntry(entry_id=f"{len(self.entries) + 1}-0", event=item))

    def last_session_entry_id(self, tenant_id: str, session_id: str) -> str:
        self._check()
        return self.entries[-1].entry_id if self.entries else "0-0"

    def read_session_events(
        self, tenant_id: str, session_id: str, after_id: str = "0-0", block_ms: int | None = None
    ) -> list[StreamEntry]:
        self._check()
        after = int(after_id.split("-")[0])
        return [e for e in self.entries if int(e.entry_id.split("-")[0]) > after]

    def _check(self) -> None:
        if self.down:
            raise RedisUnavailable("redis://127.0.0.1:1/0", "events", "connection refused")


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def seqs(events: list[SessionEvent]) -> list[int]:
    return [e.seq for e in events]


@pytest.fixture
def database() -> FakeDatabase:
    return FakeDatabase()


@pytest.fixture
def stream() -> FakeStream:
    return FakeStream()


def feed_for(
    database: FakeDatabase, stream: FakeStream | None, clock: FakeClock | None = None, **options
) -> LiveEventFeed:
    return LiveEventFeed(
        TENANT,
        SESSION,
        database.events_after,
        reader=stream,
        clock=clock or FakeClock(),
        **options,
    )


def test_without_redis_the_feed_polls_the_database(database: FakeDatabase) -> None:
    feed = feed_for(database, None)
    database.record(1, 2)
    assert seqs(feed.poll()) == [1, 2]
    assert feed.poll() == []
    database.record(3)
    assert seqs(feed.poll()) == [3]
    assert feed.source is FeedSource.DATABASE


def test_history_comes_from_the_database_and_new_events_from_redis(
    database: FakeDatabase, stream: FakeStream
) -> None:
    database.record(1, 2)
    stream.publish(event(1), event(2))
    feed = feed_for(database, stream, resync_interval=None)
    assert seqs(feed.poll()) == [1, 2]
    reads = database.reads
    database.record(3)
    stream.publish(event(3))
    assert seqs(feed.poll()) == [3]
    assert database.reads == reads  # the live event came from Redis alone
    assert feed.source is FeedSource.REDIS


def test_an_event_from_both_sources_is_yielded_once(
    database: FakeDatabase, stream: FakeStream
) -> None:
    feed = feed_for(database, stream, resync_interval=0.0)  # read the database on every poll too
    feed.poll()
    database.record(1, 2)
    stream.publish(event(1), event(2), event(2))
    assert seqs(feed.poll()) == [1, 2]
    assert feed.poll() == []


def test_starting_after_a_seq_skips_what_the_caller_has_already_shown(
    database: FakeDatabase,
) -> None:
    database.record(1, 2, 3)
    feed = feed_for(database, None, after_seq=2)
    assert seqs(feed.poll()) == [3]


def test_a_gap_in_the_stream_is_filled_from_the_database(
    database: FakeDatabase, stream: FakeStream
) -> None:
    feed = feed_for(database, stream, resync_interval=None)
    assert feed.poll() == []
    database.record(1, 2, 3)
    stream.publish(event(1), event(3))  # the publish of 2 was lost
    assert seqs(feed.poll()) == [1, 2, 3]


def test_events_of_another_session_on_the_stream_are_ignored(
    database: FakeDatabase, stream: FakeStream
) -> None:
    feed = feed_for(database, stream, resync_interval=None)
    feed.poll()
    stream.publish(event(1, session_id="IND-OTHER"))
    assert feed.poll() == []


def test_when_redis_goes_down_the_feed_reads_the_database_and_rejoins_later(
    database: FakeDatabase, stream: FakeStream
) -> None:
    feed = feed_for(database, stream, resync_interval=None)
    database.record(1)
    stream.publish(event(1))
    assert seqs(feed.poll()) == [1]

    stream.down = True
    database.record(2)  # its publish was dropped: Redis was down
    assert seqs(feed.poll()) == [2]
    assert feed.source is FeedSource.DATABASE

    stream.down = False
    database.record(3)
    stream.publish(event(3))
    assert seqs(feed.poll()) == [3]  # rejoined: history since the outage from the database
    assert feed.source is FeedSource.REDIS
    database.record(4)
    stream.publish(event(4))
    assert seqs(feed.poll()) == [4]


def test_a_periodic_resync_finds_events_that_never_reached_redis(
    database: FakeDatabase, stream: FakeStream
) -> None:
    clock = FakeClock()
    feed = feed_for(database, stream, clock=clock, resync_interval=10.0)
    feed.poll()
    database.record(1)  # committed, but its publish was lost and nothing follows it
    assert feed.poll() == []
    clock.now += 10.0
    assert seqs(feed.poll()) == [1]


def test_follow_waits_between_database_polls(database: FakeDatabase) -> None:
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        database.record(len(sleeps))  # one new event arrives while the feed waits

    feed = LiveEventFeed(TENANT, SESSION, database.events_after, poll_interval=0.25, sleep=sleep)
    assert seqs(list(itertools.islice(feed.follow(), 3))) == [1, 2, 3]
    assert sleeps == [0.25, 0.25, 0.25]
