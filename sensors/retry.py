"""Retry: FAILED, TIMEOUT and ORPHANED sessions with retries left go back to PENDING.

A tick visits only the tenants with work (`TenantWorkRepository.to_retry`, one indexed query
across tenants: a retry due or a decomposed request to settle), so idle tenants cost it nothing.
The domain computes each retry's backoff (exponential, with jitter) into `next_attempt_at`; the
dispatcher claims the session only after that moment. A session that used its retries stays.

The same tick then settles the tenant's decomposed requests (`CoordinationService.settle`):
children that can never start are cancelled, and a parent whose children are all settled ends
COMPLETED, PARTIALLY_COMPLETED or FAILED, so that happens within seconds of its last child.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from domain.session import Session
from resources.database import Database, unit_of_work
from resources.database_resource import DatabaseResource
from resources.redis.resource import RedisResource
from resources.supervision_config import SupervisionConfig
from sensors.tenant_turns import Budget, visit
from services.factory import ServiceFactory
from services.request_settlement import CoordinationService
from services.session_service import SessionService

TICK_INTERVAL_SECONDS = 5
TICK_BUDGET_SECONDS = 0.4 * TICK_INTERVAL_SECONDS  # then the rest waits for the next tick


@dg.sensor(
    minimum_interval_seconds=TICK_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Moves failed, timed-out and orphaned sessions with retries left back to PENDING; "
        "settles decomposed requests whose subtasks ended."
    ),
)
def retry_sensor(
    context: dg.SensorEvaluationContext,
    database: DatabaseResource,
    supervision: SupervisionConfig,
    redis: RedisResource,
) -> dg.SkipReason:
    services = ServiceFactory.from_resources(database, redis, supervision)
    tick = retry_tick(
        services.sessions(),
        services.request_settlement(),
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
    for parent in tick.settled:
        context.log.info(
            f"tenant {parent.tenant_id} session {parent.id}: {parent.status.value} "
            f"({parent.status_reason})"
        )
    # This sensor launches nothing itself: the dispatcher starts the retried sessions.
    return dg.SkipReason(
        f"{len(tick.retried)} sessions sent back to PENDING and {len(tick.settled)} decomposed "
        f"requests settled across {len(tick.visited)} tenants with work"
    )


@dataclass(frozen=True)
class RetryTick:
    """What a tick did: the tenants it visited (those with work, in turn), what it retried and
    settled, and the cursor for the next tick (the last tenant visited, or None)."""

    visited: list[str]
    retried: list[Session]
    settled: list[Session]
    cursor: str | None = None


def retry_tick(
    service: SessionService,
    coordination: CoordinationService,
    database: Database,
    *,
    cursor: str | None = None,
    budget_seconds: float | None = None,
) -> RetryTick:
    """Retries and settling for the tenants with work only: one indexed query finds them, so a
    tick costs O(tenants with work), and at most about `budget_seconds` of it
    (`sensors.tenant_turns`): the next tick goes on after `cursor`."""
    budget = Budget(budget_seconds)
    with unit_of_work(database) as uow:
        tenants = uow.tenant_work.to_retry()
    visited: list[str] = []
    retried: list[Session] = []
    settled: list[Session] = []
    for tenant in visit(tenants, cursor, budget):
        visited.append(tenant)
        retried += service.retry_due(tenant)
        settled += coordination.settle(tenant)
    after = visited[-1] if len(visited) < len(tenants) else None
    return RetryTick(visited, retried, settled, after)
