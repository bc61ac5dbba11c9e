"""Health of the dependencies, for the API's /health and /ready: asked for real, answered quickly.

The database is checked with ``SELECT 1`` through the application's own engine, Redis with
``PING``; both at once, each given `timeout_seconds`. The database is the truth, so it alone can
make the whole "down"; a configured Redis that is down makes it "degraded" (live events and
heartbeats fall back to the database); an unconfigured Redis is simply "not configured".

A probe that outlives its timeout is reported down and left to finish in a daemon thread (a
connect to an unreachable host ends with the driver's own connect timeout).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from domain.clock import utcnow
from resources.database import Database
from resources.redis.link import connect, describe

DEFAULT_TIMEOUT_SECONDS = 2.0


class DependencyStatus(StrEnum):
    OK = "ok"
    DOWN = "down"
    NOT_CONFIGURED = "not configured"


class OverallStatus(StrEnum):
    OK = "ok"
    DEGRADED = "degraded"
    DOWN = "down"


class DependencyHealth(BaseModel):
    """One dependency's answer: its status, why when down, and how long the check took."""

    model_config = ConfigDict(frozen=True)

    status: DependencyStatus
    detail: str = ""
    latency_ms: float | None = None


class HealthReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    status: OverallStatus
    database: DependencyHealth
    redis: DependencyHealth
    checked_at: datetime

    @property
    def ready(self) -> bool:
        """Whether the service can take requests (/ready answers 503 when not)."""
        return self.status is not OverallStatus.DOWN


def overall_status(database: DependencyStatus, redis: DependencyStatus) -> OverallStatus:
    if database is not DependencyStatus.OK:
        return OverallStatus.DOWN
    if redis is DependencyStatus.DOWN:
        return OverallStatus.DEGRADED
    return OverallStatus.OK


def check_health(
    database: Database,
    redis_url: str | None,
    *,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    clock: Callable[[], datetime] = utcnow,
) -> HealthReport:
    checked_at = clock()
    database_probe = _Probe(lambda: _select_one(database))
    redis_probe = _Probe(lambda: _ping(redis_url, timeout_seconds)) if redis_url else None
    deadline = time.monotonic() + timeout_seconds
    database_health = database_probe.result(deadline, timeout_seconds)
    redis_health = (
        redis_probe.result(deadline, timeout_seconds)
        if redis_probe
        else DependencyHealth(status=DependencyStatus.NOT_CONFIGURED)
    )
    return HealthReport(
        status=overall_status(database_health.status, redis_health.status),
        database=database_health,
        redis=redis_health,
        checked_at=checked_at,
    )


def _select_one(database: Database) -> None:
    with database.engine.connect() as connection:
        connection.execute(text("SELECT 1"))


def _ping(url: str, timeout_seconds: float) -> None:
    client = connect(
        url, connect_timeout=min(0.5, timeout_seconds), command_timeout=timeout_seconds
    )
    try:
        client.ping()
    finally:
        client.close()


class _Probe:
    """Runs one check in a daemon thread, so that a hanging dependency cannot hang the caller."""

    def __init__(self, check: Callable[[], None]) -> None:
        self._check = check
        self._error: BaseException | None = None
        self._elapsed: float | None = None
        self._thread = threading.Thread(target=self._run, name="health-probe", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        started = time.perf_counter()
        try:
            self._check()
        except Exception as error:
            self._error = error
        self._elapsed = time.perf_counter() - started

    def result(self, deadline: float, timeout_seconds: float) -> DependencyHealth:
        self._thread.join(max(deadline - time.monotonic(), 0.0))
        if self._thread.is_alive():
            return DependencyHealth(
                status=DependencyStatus.DOWN, detail=f"timed out after {timeout_seconds:g} s"
            )
        latency_ms = round((self._elapsed or 0.0) * 1000, 2)
        if self._error is not None:
            return DependencyHealth(
                status=DependencyStatus.DOWN,
                detail=_describe(self._error),
                latency_ms=latency_ms,
            )
        return DependencyHealth(status=DependencyStatus.OK, latency_ms=latency_ms)


def _describe(error: BaseException) -> str:
    # SQLAlchemy wraps the driver's error; the driver's own says what happened.
    if isinstance(error, DBAPIError) and error.orig is not None:
        return describe(error.orig)
    return describe(error)


# For the readiness report, which adds the Dagster daemon and the agents (services.platform_status).
Probe = _Probe
select_one = _select_one
ping = _ping
