"""Runtimes on demand: each tick reconciles the tenants' managed runtimes on this host.

A tenant with managed runtimes enabled (`indorch runtime start` once) gets its runtime started
when it has work and none is live, within the host's memory budget (a tenant with no slot waits,
its sessions queued); a runtime with no session for the idle period is stopped; one that died is
restarted (its sessions take the ORPHANED -> retry path). See `services.runtime_manager`;
settings from the environment (`resources.runtime_host.host`).
"""

from __future__ import annotations

import dagster as dg

from domain.caller import Caller
from resources.database_resource import DatabaseResource
from services.factory import ServiceFactory

TICK_INTERVAL_SECONDS = 15
MAX_STARTS_PER_TICK = 2  # a start takes ~5-30 s: the tick stays well inside its time limit


@dg.sensor(
    minimum_interval_seconds=TICK_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Starts a tenant's managed OpenCode runtime when it has work, stops it when idle, "
        "restarts it when it dies, within the host's memory budget."
    ),
)
def runtime_sensor(
    context: dg.SensorEvaluationContext, database: DatabaseResource
) -> dg.SkipReason:
    manager = ServiceFactory(database.get_database()).runtimes()
    report = manager.reconcile(Caller.operator(), max_starts=MAX_STARTS_PER_TICK)
    for tenant, reason in report.failed.items():
        context.log.warning(f"tenant {tenant}: runtime did not start ({reason})")
    if report.waiting:
        context.log.info(f"waiting for a runtime slot: {', '.join(report.waiting)}")
    return dg.SkipReason(report.summary())
