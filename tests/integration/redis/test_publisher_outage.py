"""A dead Redis never reaches the caller of `publish`: the event is dropped (the database keeps
it), counted, warned about once per outage, and the publisher reports itself degraded. When Redis
returns, the next publish goes through again. A Redis that accepts connections but never answers
costs at most one socket timeout per probe, never one per event."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import redis

from domain.events import SessionEvent
from resources.redis.link import ProbeBackoff
from resources.redis.live_events import RedisEventPublisher
from tests.integration.redis.conftest import RedisServerProcess

pytestmark = pytest.mark.redis

DEAD_REDIS = "redis://127.0.0.1:1/0"
PROBE_EVERY_CALL = ProbeBackoff(first=0.0, longest=0.0)


def event(seq: int, tenant: str = "acme") -> SessionEvent:
    return SessionEvent(
        session_id="IND-1",
        tenant_id=tenant,
        seq=seq,
        event_type="session.created",
        at=datetime(2026, 1, 15, tzinfo=UTC),
    )


def warnings_in(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.levelno == logging.WARNING]


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The TCP connections redis-py opens (or tries to), counted as it goes."""
    opened: list[str] = []
    original = redis.connection.Connection._connect

    def counted(connection: redis.connection.Connection) -> socket.socket:
        opened.append(f"{connection.host}:{connection.port}")
        return original(connection)

    monkeypatch.setattr(redis.connection.Connection, "_connect", counted)
    return opened


def test_publishing_to_a_dead_port_never_raises_counts_drops_and_reports_degraded(
    caplog: pytest.LogCaptureFixture, connects: list[str]
) -> None:
    publisher = RedisEventPublisher(DEAD_REDIS, probe_backoff=PROBE_EVERY_CALL)
    for seq in (1, 2, 3):
        publisher.publish(event(seq))
    assert connects == ["127.0.0.1:1"] * 3  # one try per event (each a probe), none retried
    assert publisher.degraded
    assert publisher.dropped == 3
    assert len(warnings_in(caplog)) == 1  # one warning for the outage, not one per event
    publisher.close()


def test_the_publisher_recovers_when_redis_comes_back(
    own_redis: RedisServerProcess, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="resources.redis.link")
    publisher = RedisEventPublisher(own_redis.url, probe_backoff=PROBE_EVERY_CALL)
    publisher.publish(event(1))
    assert not publisher.degraded

    own_redis.kill()
    publisher.publish(event(2))
    publisher.publish(event(3))
    assert publisher.degraded
    assert publisher.dropped == 2
    assert len(warnings_in(caplog)) == 1

    own_redis.start()  # same port, empty (no persistence)
    publisher.publish(event(4))
    assert not publisher.degraded
    assert publisher.dropped == 2
    assert "available again" in caplog.text
    check = redis.Redis.from_url(own_redis.url, decode_responses=True)
    try:
        [(_entry_id, fields)] = check.xrange("indorch:acme:events")
        assert SessionEvent.model_validate_json(fields["event"]).seq == 4
    finally:
        check.close()
    publisher.close()


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A port that accepts TCP connections (the kernel's backlog) but never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"


def test_a_silent_redis_costs_one_timeout_per_probe_not_one_per_event(
    silent_server: str, connects: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    # The next probe a minute later: all 50 events come before it, whatever the machine's load.
    publisher = RedisEventPublisher(silent_server, probe_backoff=ProbeBackoff(first=60.0))
    for seq in range(1, 51):
        publisher.publish(event(seq))
    assert publisher.dropped == 50
    assert publisher.degraded
    assert len(connects) == 1  # one probe, then the breaker answers without the network
    (warning,) = warnings_in(caplog)
    assert "Timeout" in warning.getMessage()  # the probe waited out one socket timeout
    publisher.close()
