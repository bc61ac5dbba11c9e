"""`check_health` asks each dependency for real (`SELECT 1`, `PING`) and sums up: "ok", "degraded"
when only a configured Redis is down, "down" when the database does not answer. It answers
quickly even when a dependency is unreachable."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from resources.database import Database
from resources.health import DependencyStatus, OverallStatus, check_health

pytestmark = pytest.mark.redis

DEAD_REDIS = "redis://127.0.0.1:1/0"
DEAD_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:1/x?connect_timeout=1"


@pytest.fixture
def sqlite_database(sqlite_url: str) -> Iterator[Database]:
    database = Database(sqlite_url)
    yield database
    database.dispose()


@pytest.fixture
def dead_database() -> Iterator[Database]:
    database = Database(DEAD_POSTGRES)
    yield database
    database.dispose()


def test_ok_when_the_database_and_redis_answer(sqlite_database: Database, redis_url: str) -> None:
    report = check_health(sqlite_database, redis_url)
    assert report.status is OverallStatus.OK
    assert report.database.status is DependencyStatus.OK
    assert report.redis.status is DependencyStatus.OK
    assert report.database.latency_ms is not None
    assert report.ready


def test_degraded_when_a_configured_redis_is_down(
    sqlite_database: Database, redis_url: str
) -> None:
    report = check_health(sqlite_database, DEAD_REDIS)
    assert report.status is OverallStatus.DEGRADED
    assert report.redis.status is DependencyStatus.DOWN
    assert "ConnectionError" in report.redis.detail
    assert report.ready


def test_redis_not_configured_is_fine(sqlite_database: Database, redis_url: str) -> None:
    report = check_health(sqlite_database, None)
    assert report.status is OverallStatus.OK
    assert report.redis.status is DependencyStatus.NOT_CONFIGURED
    assert report.model_dump(mode="json")["redis"]["status"] == "not configured"


def test_down_when_the_database_is_unreachable(dead_database: Database, redis_url: str) -> None:
    started = time.monotonic()
    report = check_health(dead_database, redis_url)
    assert time.monotonic() - started < 3.0
    assert report.status is OverallStatus.DOWN
    assert report.database.status is DependencyStatus.DOWN
    assert report.database.detail
    assert report.redis.status is DependencyStatus.OK
    assert not report.ready


def test_a_hanging_database_is_reported_down_after_the_timeout(redis_url: str) -> None:
    # A port that accepts TCP connections but never speaks PostgreSQL: the probe gives up.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        database = Database(f"postgresql+psycopg://postgres@127.0.0.1:{port}/x")
        try:
            started = time.monotonic()
            report = check_health(database, None, timeout_seconds=0.5)
            assert time.monotonic() - started < 1.5
        finally:
            database.dispose()
    assert report.database.status is DependencyStatus.DOWN
    assert "timed out" in report.database.detail
