"""The maintenance area: the daily `retention` job (Dagster's old runs, our expired session
history) and its schedule."""

import dagster as dg

from domain.caller import Caller
from domain.clock import utcnow
from domain.history_retention import expiry_cutoff
from orchestrator_defs.maintenance.run_retention import prune_finished_runs
from resources.database_resource import DatabaseResource
from resources.retention_policy import RetentionPolicy
from services.history_retention import HistoryRetention


@dg.op(description="Delete finished Dagster runs (and their event logs) past the retention.")
def prune_dagster_runs(context: dg.OpExecutionContext, retention: RetentionPolicy) -> None:
    cutoff = expiry_cutoff(retention.run_days, utcnow())
    pruned = prune_finished_runs(context.instance, cutoff, limit=retention.max_runs_per_tick)
    context.log.info(
        f"runs created before {cutoff.isoformat()}: {pruned.deleted} deleted, "
        f"{pruned.kept_for_materializations} kept (latest materialization of a partition)"
    )


@dg.op(
    description="Remove the expired history of sessions finished past the retention, and "
    "webhook deliveries that ended before then."
)
def prune_session_history(
    context: dg.OpExecutionContext, database: DatabaseResource, retention: RetentionPolicy
) -> None:
    cutoff = expiry_cutoff(retention.history_days, utcnow())
    report = HistoryRetention(database.get_database()).prune(
        Caller.operator(), cutoff, batch_size=retention.batch_size
    )
    context.log.info(
        f"sessions finished before {cutoff.isoformat()}: {report.session_events} events and "
        f"{report.checkpoints} checkpoints removed across {report.tenants} tenants, and "
        f"{report.webhook_deliveries} webhook deliveries that ended before then"
    )


@dg.job(description="Daily retention: Dagster's old runs and our expired session history.")
def retention() -> None:
    prune_dagster_runs()
    prune_session_history()


retention_schedule = dg.ScheduleDefinition(
    name="retention_schedule",
    job=retention,
    cron_schedule="30 2 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every day at 02:30 UTC.",
)


def defs() -> dg.Definitions:
    return dg.Definitions(jobs=[retention], schedules=[retention_schedule])
