"""Retry: FAILED, TIMEOUT and ORPHANED sessions with retries left go back to PENDING.

A tick visits only the tenants with a retry left (`TenantWorkRepository.to_retry`, one indexed
query across tenants), so idle tenants cost it nothing. The domain computes each retry's backoff
(exponential, with jitter) into `next_attempt_at`; the dispatcher claims the session only after
that moment. A session that used its retries stays. Decomposed requests are settled by their own
sensor (`sensors.settlement`).
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from domain.session import Session
from resources.database import Database, unit_of_work
from resources.database_resource import DatabaseResource
from resources.redis.resource import RedisResource
from resources.supervision_config import SupervisionConfig
from sensors.tenant_turns import take_turns
from services.factory import ServiceFactory
from services.session_service import SessionService

TICK_INTERVAL_SECONDS = 5
TICK_BUDGET_SECONDS = 0.4 * TICK_INTERVAL_SECONDS  # then the rest waits for the next tick


@dg.sensor(
    minimum_interval_seconds=TICK_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Moves failed, timed-out and orphaned sessions with retries left back to PENDING.",
)
def retry_sensor(
    context: dg.SensorEvaluationContext,
    database: DatabaseResource,
    supervision: SupervisionConfig,
    redis: RedisResource,
) -> dg.SkipReason:
    tick = retry_tick(
        ServiceFactory.from_resources(database, redis, supervision).sessions(),
        database.get_database(),
        cursor=context.cursor,
        budget_seconds=TICK_BUDGET_SECONDS,
    )
    context.update_cursor(tick.cursor)
    for session in tick.retried:
        context.log.info(
            f"tenant {session.tenant_id} session {session.id}: retry {session.retry_count} of "
            f"{session.max_retries} at {session.next_attempt_at:%H:%M:%S}"
        )
    # This sensor launches nothing itself: the dispatcher starts the retried sessions.
    return dg.SkipReason(
        f"{len(tick.retried)} sessions sent back to PENDING across {len(tick.visited)} tenants "
        "with a retry left"
    )


@dataclass(frozen=True)
class RetryTick:
    """What a tick did: the tenants it visited (those with work, in turn), what it retried, and
    the cursor for the next tick (the last tenant visited, or None)."""

    visited: list[str]
    retried: list[Session]
    cursor: str | None = None


def retry_tick(
    service: SessionService,
    database: Database,
    *,
    cursor: str | None = None,
    budget_seconds: float | None = None,
) -> RetryTick:
    """Retries for the tenants with a retry left only: one indexed query finds them, so a
    tick costs O(tenants with work), and at most about `budget_seconds` of it
    (`sensors.tenant_turns`): the next tick goes on after `cursor`."""
    with unit_of_work(database) as uow:
        tenants = uow.tenant_work.to_retry()
    visited, retried, after = take_turns(tenants, service.retry_due, cursor, budget_seconds)
    return RetryTick(visited, retried, after)
