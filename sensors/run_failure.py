"""Reconciles the sessions of wave runs that Dagster marked failed.

Their leases are expired at once, so the dispatcher's next tick adopts them: a session still
running on its agent is followed by a new wave (no work lost), one never started is started, and
one whose agent session is gone ends ORPHANED and is retried. Runs Dagster retries itself
(`dagster/will_retry`) are left alone.
"""

from __future__ import annotations

import dagster as dg

from resources.database_resource import DatabaseResource
from resources.redis.resource import RedisResource
from resources.supervision_config import SupervisionConfig
from services.factory import ServiceFactory
from services.waves import JOB_NAME, TENANT_TAG, WAVE_TAG

WILL_RETRY_TAG = "dagster/will_retry"


@dg.run_failure_sensor(
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Hands the sessions of a failed wave run back to the dispatcher.",
)
def wave_failure_sensor(
    context: dg.RunFailureSensorContext,
    database: DatabaseResource,
    redis: RedisResource,
    supervision: SupervisionConfig,
) -> None:
    run = context.dagster_run
    if run.job_name != JOB_NAME:
        return  # the sensor names the job it watches; it does not import the code location
    if run.tags.get(WILL_RETRY_TAG) == "true":
        context.log.info(f"run {run.run_id} will be retried by Dagster; nothing to reconcile")
        return
    tenant, wave_id = run.tags.get(TENANT_TAG), run.tags.get(WAVE_TAG)
    if not (tenant and wave_id):
        context.log.info(f"run {run.run_id} carries no wave tags; nothing to reconcile")
        return
    services = ServiceFactory.from_resources(database, redis, supervision)
    released = services.sessions().release_leases(tenant, wave_id)
    context.log.info(
        f"tenant {tenant}: wave {wave_id} failed; released {len(released)} sessions "
        f"for adoption: {', '.join(s.id for s in released)}"
    )
