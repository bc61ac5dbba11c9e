"""Dispatch: turns waiting sessions into wave runs, one tenant at a time.

Per tenant and tick: sessions whose supervisor is gone (claimed but never started, or running
with an expired lease) are re-leased to a new wave that adopts them; then PENDING sessions are
claimed, a wave at a time, up to the tenant's free slots. Claims are conditional UPDATEs, so two
ticks never claim one session twice. A wave's id, its sessions' lease owner and its run key are
one value derived from the sessions and their versions: deterministic, and new for every claim.
A tenant with a live wave run (queued or running) is left its new sessions: that wave takes them
on itself (`services.top_up`); only those due for `left_behind_seconds` are claimed here.
Sessions no agent of the tenant can serve are set aside by the claims and swept here first
(`services.unroutable`): claimed once an agent offers what they need, FAILED after a wait.
"""

from __future__ import annotations

from datetime import timedelta

import dagster as dg

from domain.clock import utcnow
from domain.session import Session
from resources.dagster_partitions import missing_tenant_partitions
from resources.database_resource import DatabaseResource
from resources.redis.resource import RedisResource
from resources.supervision_config import SupervisionConfig
from services.factory import ServiceFactory
from services.session_service import Claim, SessionService
from services.waves import JOB_NAME, TENANT_TAG, Wave, wave_id_for

TICK_INTERVAL_SECONDS = 2
LIVE_RUN_STATUSES = (
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
)
MAX_WAVES_PER_TENANT_TICK = 50


def tenant_waves(
    service: SessionService,
    tenant: str,
    supervision: SupervisionConfig,
    has_live_wave: bool = False,
) -> list[Wave]:
    """Waves for the tenant's unsupervised and due sessions. While the tenant has a live wave
    (which takes on new sessions itself), only sessions it left behind are claimed."""
    waves: list[Wave] = []
    due_by = (
        utcnow() - timedelta(seconds=supervision.left_behind_seconds)
        if has_live_wave and supervision.top_up_seconds > 0
        else None
    )
    for purpose in ("adopt", "start"):

        def owner_for(sessions: list[Session], purpose: str = purpose) -> str:
            return wave_id_for(tenant, sessions, purpose)

        for _ in range(MAX_WAVES_PER_TENANT_TICK):
            size, lease = supervision.wave_size, supervision.claim_lease
            if purpose == "adopt":
                claim: Claim = service.lease_unsupervised(tenant, size, lease, owner_for)
            else:
                claim = service.claim_pending(tenant, size, lease, owner_for, due_by=due_by)
            if not claim.sessions:
                break
            waves.append(
                Wave(
                    tenant,
                    tuple(s.id for s in claim.sessions),
                    claim.owner,
                    max(s.max_duration_seconds for s in claim.sessions),
                    int(supervision.top_up_seconds),
                )
            )
    return waves


def tenants_with_live_waves(instance: dg.DagsterInstance) -> set[str]:
    runs = instance.get_runs(
        filters=dg.RunsFilter(job_name=JOB_NAME, statuses=list(LIVE_RUN_STATUSES))
    )
    return {run.tags[TENANT_TAG] for run in runs if TENANT_TAG in run.tags}


@dg.sensor(
    job_name=JOB_NAME,
    minimum_interval_seconds=TICK_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Claims waiting sessions per tenant (within quota) and launches wave runs.",
)
def dispatch_sensor(
    context: dg.SensorEvaluationContext,
    database: DatabaseResource,
    supervision: SupervisionConfig,
    redis: RedisResource,
) -> dg.SensorResult | dg.SkipReason:
    services = ServiceFactory.from_resources(database, redis, supervision)
    service = services.sessions()
    unroutable = services.unroutable()
    with database.unit_of_work() as uow:
        tenants = uow.tenants.active_slugs()
    live = tenants_with_live_waves(context.instance)
    requests: list[dg.RunRequest] = []
    for tenant in tenants:
        # Before the claims: one an agent offers what it needs now is claimed in this tick.
        for session in unroutable.sweep(tenant, supervision.unroutable_wait):
            context.log.info(f"tenant {tenant} session {session.id}: {session.status_reason}")
        for wave in tenant_waves(service, tenant, supervision, tenant in live):
            context.log.info(
                f"tenant {tenant}: wave {wave.wave_id} with {len(wave.session_ids)} sessions: "
                + ", ".join(wave.session_ids)
            )
            requests.append(
                dg.RunRequest(
                    run_key=wave.wave_id,
                    run_config=wave.run_config(),
                    tags=wave.tags(),
                    partition_key=tenant,
                )
            )
    if not requests:
        return dg.SkipReason(f"{len(tenants)} active tenants, no session waiting within quota")
    # A wave's partition must exist before its run: Dagster adds these first.
    partitions = missing_tenant_partitions(
        context.instance, {request.partition_key for request in requests if request.partition_key}
    )
    return dg.SensorResult(run_requests=requests, dynamic_partitions_requests=partitions)
