"""Retry: FAILED, TIMEOUT and ORPHANED sessions with retries left go back to PENDING.

The domain computes each retry's backoff (exponential, with jitter) into `next_attempt_at`; the
dispatcher claims the session only after that moment. A session that used its retries stays.

The same tick then settles the tenant's decomposed requests (`CoordinationService.settle`):
children that can never start are cancelled, and a parent whose children are all settled ends
COMPLETED, PARTIALLY_COMPLETED or FAILED, so that happens within seconds of its last child.
"""

from __future__ import annotations

import dagster as dg

from resources.database_resource import DatabaseResource
from resources.redis.resource import RedisResource
from resources.supervision_config import SupervisionConfig
from services.factory import ServiceFactory

TICK_INTERVAL_SECONDS = 5


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
    service, coordination = services.sessions(), services.request_settlement()
    with database.unit_of_work() as uow:
        tenants = uow.tenants.active_slugs()
    retried = settled = 0
    for tenant in tenants:
        for session in service.retry_due(tenant):
            retried += 1
            context.log.info(
                f"tenant {tenant} session {session.id}: retry {session.retry_count} of "
                f"{session.max_retries} at {session.next_attempt_at:%H:%M:%S}"
            )
        for parent in coordination.settle(tenant):
            settled += 1
            context.log.info(
                f"tenant {tenant} session {parent.id}: {parent.status.value} "
                f"({parent.status_reason})"
            )
    # This sensor launches nothing itself: the dispatcher starts the retried sessions.
    return dg.SkipReason(
        f"{retried} sessions sent back to PENDING and {settled} decomposed requests settled "
        f"across {len(tenants)} tenants"
    )
