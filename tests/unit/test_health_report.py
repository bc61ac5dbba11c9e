"""The overall health follows from its dependencies: the database decides "down", Redis at most
"degraded" (it is an accelerator), and an unconfigured Redis is no problem at all."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from resources.health import (
    DependencyHealth,
    DependencyStatus,
    HealthReport,
    OverallStatus,
    overall_status,
)

OK = DependencyStatus.OK
DOWN = DependencyStatus.DOWN
NOT_CONFIGURED = DependencyStatus.NOT_CONFIGURED


@pytest.mark.parametrize(
    ("database", "redis", "expected"),
    [
        (OK, OK, OverallStatus.OK),  # everything answers
        (OK, NOT_CONFIGURED, OverallStatus.OK),  # the embedded default runs without Redis
        (OK, DOWN, OverallStatus.DEGRADED),  # live events and heartbeats fall back to the DB
        (DOWN, OK, OverallStatus.DOWN),  # without the source of truth nothing works
        (DOWN, DOWN, OverallStatus.DOWN),
        (DOWN, NOT_CONFIGURED, OverallStatus.DOWN),
    ],
)
def test_overall_status(
    database: DependencyStatus, redis: DependencyStatus, expected: OverallStatus
) -> None:
    assert overall_status(database, redis) is expected


def test_a_report_serializes_to_plain_json() -> None:
    report = HealthReport(
        status=OverallStatus.DEGRADED,
        database=DependencyHealth(status=OK, latency_ms=1.5),
        redis=DependencyHealth(status=DOWN, detail="ConnectionError: refused"),
        checked_at=datetime(2026, 1, 15, tzinfo=UTC),
    )
    document = json.loads(report.model_dump_json())
    assert document == {
        "status": "degraded",
        "database": {"status": "ok", "detail": "", "latency_ms": 1.5},
        "redis": {"status": "down", "detail": "ConnectionError: refused", "latency_ms": None},
        "checked_at": "2026-01-15T00:00:00Z",
    }
    assert report.ready
    assert not report.model_copy(update={"status": OverallStatus.DOWN}).ready
