"""`LiveEventFeed` against a real Redis and a real database: live events come from the stream,
and while Redis is down the feed reads the session's history from the database (the truth), then
rejoins the stream when Redis returns, never yielding an event twice."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from domain.caller import Caller
from domain.events import SessionEvent
from domain.tenant import Tenant
from resources.database import Database, unit_of_work
from resources.database.migrate import upgrade
from resources.redis.link import ProbeBackoff
from resources.redis.live_event_feed import FeedSource, LiveEventFeed
from resources.redis.live_events import RedisEventPublisher, RedisEventReader
from services.session_service import SessionService, SubmitSession
from tests.integration.redis.conftest import RedisServerProcess

pytestmark = pytest.mark.redis

PROBE_EVERY_CALL = ProbeBackoff(first=0.0, longest=0.0)


def seqs(events: list[SessionEvent]) -> list[int]:
    return [e.seq for e in events]


@pytest.fixture(scope="module")
def migrated_sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('live-feed') / 'indorch.db'}"
    upgrade(url)
    return url


@pytest.fixture
def database(migrated_sqlite_url: str, tenant: str) -> Iterator[Database]:
    database = Database(migrated_sqlite_url)
    with unit_of_work(database) as uow:
        uow.tenants.add(Tenant(slug=tenant, name=f"Tenant {tenant}"))
    yield database
    database.dispose()


def test_with_redis_up_each_event_is_yielded_once(
    redis_url: str, database: Database, tenant: str
) -> None:
    publisher = RedisEventPublisher(redis_url)
    reader = RedisEventReader(redis_url)
    service = SessionService(database, publish=publisher.publish)
    session = service.submit(
        Caller.operator(), tenant, SubmitSession(title="feed", prompt="say hi")
    )
    feed = LiveEventFeed(
        tenant,
        session.id,
        lambda after_seq: service.events(Caller.operator(), tenant, session.id, after_seq),
        reader=reader,
        block_ms=100,
        resync_interval=0.0,  # read the database on every poll as well: both sources overlap
    )
    assert seqs(feed.poll()) == [1]  # history, from the database
    service.cancel(Caller.operator(), tenant, session.id, reason="changed my mind")
    assert seqs(feed.poll()) == [2]  # from Redis and the database: once
    assert feed.poll() == []
    assert feed.source is FeedSource.REDIS
    publisher.close()
    reader.close()


def test_while_redis_is_down_the_feed_reads_the_database_then_rejoins(
    own_redis: RedisServerProcess, database: Database, tenant: str
) -> None:
    publisher = RedisEventPublisher(own_redis.url, probe_backoff=PROBE_EVERY_CALL)
    reader = RedisEventReader(own_redis.url, probe_backoff=PROBE_EVERY_CALL)
    service = SessionService(database, publish=publisher.publish)
    session = service.submit(
        Caller.operator(), tenant, SubmitSession(title="outage", prompt="say hi")
    )
    feed = LiveEventFeed(
        tenant,
        session.id,
        lambda after_seq: service.events(Caller.operator(), tenant, session.id, after_seq),
        reader=reader,
        block_ms=100,
        resync_interval=None,
    )
    assert seqs(feed.poll()) == [1]
    assert feed.source is FeedSource.REDIS

    own_redis.kill()
    service.cancel(
        Caller.operator(), tenant, session.id, reason="changed my mind"
    )  # its publish is dropped
    assert publisher.dropped == 1
    assert seqs(feed.poll()) == [2]
    assert feed.source is FeedSource.DATABASE
    assert feed.poll() == []

    own_redis.start()
    assert feed.poll() == []  # rejoined; nothing new, nothing repeated
    assert feed.source is FeedSource.REDIS
    late = SessionEvent(
        session_id=session.id,
        tenant_id=tenant,
        seq=3,
        event_type="session.note",
        at=datetime.now(UTC),
    )
    publisher.publish(late)  # a live event reaches the follower through Redis again
    assert seqs(feed.poll()) == [3]
    publisher.close()
    reader.close()


def test_without_redis_configured_the_feed_only_polls_the_database(
    database: Database, tenant: str
) -> None:
    service = SessionService(database)
    session = service.submit(
        Caller.operator(), tenant, SubmitSession(title="embedded", prompt="say hi")
    )
    feed = LiveEventFeed(
        tenant,
        session.id,
        lambda after_seq: service.events(Caller.operator(), tenant, session.id, after_seq),
    )
    assert seqs(feed.poll()) == [1]
    service.cancel(Caller.operator(), tenant, session.id)
    assert seqs(feed.poll()) == [2]
    assert feed.source is FeedSource.DATABASE
