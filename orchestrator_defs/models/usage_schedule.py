"""The daily usage schedule: yesterday's `tenant_usage` for every tenant, and any earlier day of
the backfill window that has no materialization yet (the daemon was down, a tenant was added).

Bounded per tick, oldest first, so a long outage catches up over a few ticks without a flood.
"""

from datetime import date, timedelta

import dagster as dg

from assets.tenant_usage import tenant_usage, tenant_usage_job
from resources.dagster_partitions import tenant_partitions

BACKFILL_DAYS = 31
MAX_RUNS_PER_TICK = 200


def missing_usage_partitions(
    instance: dg.DagsterInstance, today: date, backfill_days: int = BACKFILL_DAYS
) -> list[dg.MultiPartitionKey]:
    tenants = sorted(instance.get_dynamic_partitions(tenant_partitions.name))
    done = instance.get_materialized_partitions(tenant_usage.key)
    days = [today - timedelta(days=n) for n in range(backfill_days, 0, -1)]
    missing = []
    for day in days:
        for tenant in tenants:
            key = dg.MultiPartitionKey({"day": day.isoformat(), "tenant": tenant})
            if key not in done:
                missing.append(key)
    return missing


@dg.schedule(
    job=tenant_usage_job,
    cron_schedule="15 0 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Yesterday's usage of every tenant, and missing days of the last 31.",
)
def tenant_usage_schedule(
    context: dg.ScheduleEvaluationContext,
) -> list[dg.RunRequest] | dg.SkipReason:
    today = context.scheduled_execution_time.date()
    missing = missing_usage_partitions(context.instance, today)[:MAX_RUNS_PER_TICK]
    if not missing:
        return dg.SkipReason("every tenant's usage of the last 31 days is materialized")
    return [dg.RunRequest(partition_key=key, run_key=str(key)) for key in missing]
