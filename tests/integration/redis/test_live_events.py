"""Live session events over Redis Streams: every event lands on its tenant's stream and on its
session's stream (capped, expiring), both keyed by the tenant, and readers get them back as
`SessionEvent`s, blocking until one arrives or their timeout passes."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest
import redis

from domain.events import SessionEvent
from resources.redis.live_events import RedisEventPublisher, RedisEventReader

pytestmark = pytest.mark.redis


def event(tenant: str, seq: int, session_id: str = "IND-1", **data: object) -> SessionEvent:
    return SessionEvent(
        session_id=session_id,
        tenant_id=tenant,
        seq=seq,
        event_type="session.status_changed",
        old_status="PENDING",
        new_status="QUEUED",
        reason="claimed",
        data=dict(data),
        at=datetime(2026, 1, 15, 12, 0, seq % 60, tzinfo=UTC),
    )


@pytest.fixture
def publisher(redis_url: str):
    publisher = RedisEventPublisher(redis_url)
    yield publisher
    publisher.close()


@pytest.fixture
def reader(redis_url: str):
    reader = RedisEventReader(redis_url)
    yield reader
    reader.close()


def test_a_published_event_is_on_the_tenant_and_session_streams_as_json(
    publisher: RedisEventPublisher, redis_client: redis.Redis, tenant: str
) -> None:
    sent = event(tenant, 1, wave="w-1", tokens=12)
    publisher.publish(sent)

    answer = redis_client.xread({f"indorch:{tenant}:events": "0-0"})
    [(key, [(_entry_id, fields)])] = answer
    assert key == f"indorch:{tenant}:events"
    assert SessionEvent.model_validate_json(fields["event"]) == sent
    assert (fields["session_id"], fields["seq"]) == ("IND-1", "1")
    [(_entry_id, fields)] = redis_client.xrange(f"indorch:{tenant}:session:IND-1")
    assert SessionEvent.model_validate_json(fields["event"]) == sent
    assert not publisher.degraded
    assert publisher.dropped == 0


def test_readers_get_the_events_back_in_order_after_a_cursor(
    publisher: RedisEventPublisher, reader: RedisEventReader, tenant: str
) -> None:
    for seq in (1, 2, 3):
        publisher.publish(event(tenant, seq))
    entries = reader.read_session_events(tenant, "IND-1")
    assert [entry.event.seq for entry in entries] == [1, 2, 3]
    later = reader.read_session_events(tenant, "IND-1", after_id=entries[0].entry_id)
    assert [entry.event.seq for entry in later] == [2, 3]
    assert [e.event.seq for e in reader.read_tenant_events(tenant)] == [1, 2, 3]
    assert reader.last_session_entry_id(tenant, "IND-1") == entries[-1].entry_id
    assert reader.last_session_entry_id(tenant, "IND-UNKNOWN") == "0-0"


def test_a_blocking_read_wakes_up_when_an_event_is_published(
    publisher: RedisEventPublisher, reader: RedisEventReader, tenant: str
) -> None:
    cursor = reader.last_session_entry_id(tenant, "IND-1")
    timer = threading.Timer(0.2, publisher.publish, args=[event(tenant, 1)])
    started = time.monotonic()
    timer.start()
    try:
        entries = reader.read_session_events(tenant, "IND-1", after_id=cursor, block_ms=3000)
    finally:
        timer.cancel()
    assert [entry.event.seq for entry in entries] == [1]
    assert time.monotonic() - started < 2.0


def test_a_blocking_read_with_nothing_new_returns_empty_after_its_timeout(
    reader: RedisEventReader, tenant: str
) -> None:
    started = time.monotonic()
    assert reader.read_tenant_events(tenant, after_id="$", block_ms=150) == []
    assert 0.1 <= time.monotonic() - started < 1.0


def test_two_tenants_streams_never_mix(
    publisher: RedisEventPublisher,
    reader: RedisEventReader,
    redis_client: redis.Redis,
    tenant: str,
    other_tenant: str,
) -> None:
    # Even the same session id (ids are unique, but keys must not rely on it) stays apart.
    publisher.publish(event(tenant, 1, marker="mine"))
    publisher.publish(event(other_tenant, 1, marker="theirs"))
    publisher.publish(event(other_tenant, 2, marker="theirs"))

    mine = reader.read_tenant_events(tenant)
    assert [(e.event.tenant_id, e.event.data["marker"]) for e in mine] == [(tenant, "mine")]
    theirs = reader.read_session_events(other_tenant, "IND-1")
    assert {e.event.tenant_id for e in theirs} == {other_tenant}
    assert len(theirs) == 2
    assert set(redis_client.scan_iter(match=f"indorch:{tenant}:*")) == {
        f"indorch:{tenant}:events",
        f"indorch:{tenant}:session:IND-1",
    }


def test_the_session_stream_is_capped_and_expires_while_the_tenant_stream_keeps_more(
    publisher: RedisEventPublisher, redis_client: redis.Redis, tenant: str
) -> None:
    for seq in range(1, 1301):
        publisher.publish(event(tenant, seq))
    session_length = redis_client.xlen(f"indorch:{tenant}:session:IND-1")
    # MAXLEN ~ 1000 trims whole stream nodes (100 entries each by default): 1000..1099 remain.
    assert 1000 <= session_length < 1100
    assert redis_client.xlen(f"indorch:{tenant}:events") == 1300
    assert 0 < redis_client.ttl(f"indorch:{tenant}:session:IND-1") <= 24 * 3600
    newest = redis_client.xrevrange(f"indorch:{tenant}:session:IND-1", count=1)
    assert SessionEvent.model_validate_json(newest[0][1]["event"]).seq == 1300
