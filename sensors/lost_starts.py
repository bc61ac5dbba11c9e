"""Fails runs whose process was lost before they started.

Dagster's run monitoring asks the launcher about a STARTED run's worker (our launchers answer:
instance_plugins/) but gives a STARTING run only `start_timeout_seconds` (300 s in
deploy/dagster.yaml). A run process killed while it starts, or its code server killed with it,
left the run STARTING for those five minutes, holding one of its tenant's run-queue slots and
the sessions its wave had claimed (the chaos suite found it). This sensor asks the launcher
about runs STARTING for longer than `LOST_START_GRACE_SECONDS` and fails those whose worker it
reports gone; the wave-failure sensor then hands their sessions back to the dispatcher.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg

from instance_plugins.dagster_internals import WorkerStatus

# A launched run reports STARTED within seconds; its launcher registers the process before the
# daemon's launch returns, so a run still STARTING this long after that with no process is lost.
LOST_START_GRACE_SECONDS = 30
TICK_SECONDS = 15


def fail_lost_starts(instance: dg.DagsterInstance, starting_before: datetime) -> list[str]:
    """Fails the runs STARTING since before `starting_before` whose launcher says their worker
    is gone (not those it cannot tell about); returns their ids."""
    launcher = instance.run_launcher
    if not launcher.supports_check_run_worker_health:
        return []
    starting = instance.get_runs(
        dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTING], updated_before=starting_before)
    )
    failed = []
    for run in starting:
        health = launcher.check_run_worker_health(run)
        if health.status is not WorkerStatus.FAILED:
            continue
        # Read again after the answer: a run that started and ended meanwhile is not lost.
        current = instance.get_run_by_id(run.run_id)
        if current is None or current.status is not dg.DagsterRunStatus.STARTING:
            continue
        instance.report_run_failed(
            current, f"Its process was lost before it started: {health.msg or 'gone'}"
        )
        failed.append(run.run_id)
    return failed


@dg.sensor(
    minimum_interval_seconds=TICK_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Fails runs whose process was lost while starting (run monitoring would wait "
        "start_timeout_seconds), so their sessions are handed back at once."
    ),
)
def lost_start_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    cutoff = datetime.now(UTC) - timedelta(seconds=LOST_START_GRACE_SECONDS)
    failed = fail_lost_starts(context.instance, starting_before=cutoff)
    if failed:
        context.log.warning(f"failed runs lost while starting: {', '.join(failed)}")
        return dg.SkipReason(f"failed {len(failed)} runs lost while starting")
    return dg.SkipReason("no run lost while starting")
