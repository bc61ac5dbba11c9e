"""Settlement: decomposed requests follow their subtasks, and end within seconds of the last.

A tick visits only the tenants with a decomposed request in flight
(`TenantWorkRepository.to_settle`, one indexed query across tenants). Per tenant
(`CoordinationService.settle`): children that can never start are cancelled, each child's task
follows its session, and a parent whose children are all settled ends COMPLETED,
PARTIALLY_COMPLETED or FAILED with their results gathered.
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
from services.request_settlement import CoordinationService

TICK_INTERVAL_SECONDS = 5
TICK_BUDGET_SECONDS = 0.4 * TICK_INTERVAL_SECONDS  # then the rest waits for the next tick


@dataclass(frozen=True)
class SettleTick:
    """What a tick did: the tenants it visited, the parents it settled, the next cursor."""

    visited: list[str]
    settled: list[Session]
    cursor: str | None = None


def settle_tick(
    coordination: CoordinationService,
    database: Database,
    *,
    cursor: str | None = None,
    budget_seconds: float | None = None,
) -> SettleTick:
    """Settling for the tenants with a decomposed request in flight only: O(those tenants)."""
    with unit_of_work(database) as uow:
        tenants = uow.tenant_work.to_settle()
    return SettleTick(*take_turns(tenants, coordination.settle, cursor, budget_seconds))


@dg.sensor(
    minimum_interval_seconds=TICK_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Settles decomposed requests: cancels subtasks that can never start, ends "
    "a request once its subtasks have.",
)
def settlement_sensor(
    context: dg.SensorEvaluationContext,
    database: DatabaseResource,
    supervision: SupervisionConfig,
    redis: RedisResource,
) -> dg.SkipReason:
    tick = settle_tick(
        ServiceFactory.from_resources(database, redis, supervision).coordination(),
        database.get_database(),
        cursor=context.cursor,
        budget_seconds=TICK_BUDGET_SECONDS,
    )
    context.update_cursor(tick.cursor)
    for parent in tick.settled:
        context.log.info(
            f"tenant {parent.tenant_id} session {parent.id}: {parent.status.value} "
            f"({parent.status_reason})"
        )
    # It launches nothing: children are started by the dispatcher.
    return dg.SkipReason(
        f"{len(tick.settled)} decomposed requests settled across {len(tick.visited)} tenants "
        "with one in flight"
    )
