"""Dispatch: turns waiting sessions into wave runs, one tenant at a time.

A tick visits only the tenants with work (`TenantWorkRepository.to_dispatch`, one indexed query
across tenants), so idle tenants cost it nothing; a tick with more work than its interval allows
stops part-way through it and the next goes on after the last tenant it visited
(`sensors.tenant_turns`). Per tenant visited: sessions whose supervisor is gone (claimed but never
started, or running with an expired lease) are re-leased to a new wave that adopts them; then
PENDING sessions are claimed, a wave at a time, up to the tenant's free slots. Claims are
conditional UPDATEs, so two ticks never claim one session twice. A wave's id, its sessions' lease
owner and its run key are one value derived from the sessions and their versions: deterministic,
and new for every claim. A tenant with a live wave run (queued or running) is left its new
and unsupervised sessions: that wave takes them on itself (`services.top_up`), rather than a new
run waiting behind it in the run queue; only those due (or unsupervised) for
`left_behind_seconds` are claimed here. Sessions no agent of the tenant can serve are set aside
by the claims and swept first (`services.unroutable`): claimed once an agent offers what they
need, FAILED after a wait. Runs are requested in the tenant's partition of the job, which is
added first when missing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import dagster as dg

from domain.clock import utcnow
from domain.session import Session
from resources.dagster_partitions import missing_tenant_partitions
from resources.database import unit_of_work
from resources.database_resource import DatabaseResource
from resources.redis.resource import RedisResource
from resources.supervision_config import SupervisionConfig
from sensors.tenant_turns import Budget, visit
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
# Claiming stops once this much of a tick is spent (the rest waits for the next tick), leaving
# the rest of the interval to the tick's fixed costs, the last wave's claim and a stall (1,000
# tenants' 10,000 sessions on a loaded machine: ticks of 1.2 s, a few up to 2.0 s at 1.0 s).
TICK_BUDGET_SECONDS = 0.4 * TICK_INTERVAL_SECONDS


def tenant_waves(
    service: SessionService,
    tenant: str,
    supervision: SupervisionConfig,
    has_live_wave: bool = False,
    budget: Budget | None = None,
) -> list[Wave]:
    """Waves for the tenant's unsupervised and due sessions. While the tenant has a live wave
    (which takes on new and unsupervised sessions itself), only sessions it left behind are
    claimed or adopted. A spent
    `budget` (the tick's) stops it after the wave at hand."""
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
                claim: Claim = service.lease_unsupervised(
                    tenant, size, lease, owner_for, expired_by=due_by
                )
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
            if budget is not None and budget.spent:
                return waves
    return waves


@dataclass(frozen=True)
class DispatchTick:
    """What a tick did: the tenants it visited (those with work, in turn), the waves it formed,
    and the cursor for the next tick (the last tenant visited, or None after a full round)."""

    visited: list[str]
    waves: list[Wave]
    cursor: str | None


def dispatch_tick(
    services: ServiceFactory,
    supervision: SupervisionConfig,
    live_tenants: Callable[[], set[str]],
    *,
    cursor: str | None = None,
    budget_seconds: float | None = None,
) -> DispatchTick:
    """Waves for the tenants with work only: one indexed query finds them, so a tick costs
    O(tenants with work), and at most about `budget_seconds` of it (`sensors.tenant_turns`):
    the next tick goes on after `cursor`. `live_tenants` (those with a live wave) is asked
    only when a tenant has work."""
    budget = Budget(budget_seconds)
    service, unroutable = services.sessions(), services.unroutable()
    with unit_of_work(services.database) as uow:
        tenants = uow.tenant_work.to_dispatch(utcnow())
    live = live_tenants() if tenants else set()
    visited: list[str] = []
    waves: list[Wave] = []
    for tenant in visit(tenants, cursor, budget):
        visited.append(tenant)
        # Before the claims: one an agent offers what it needs now is claimed in this tick.
        unroutable.sweep(tenant, supervision.unroutable_wait)
        waves += tenant_waves(service, tenant, supervision, tenant in live, budget)
    return DispatchTick(visited, waves, visited[-1] if len(visited) < len(tenants) else None)


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
    tick = dispatch_tick(
        ServiceFactory.from_resources(database, redis, supervision),
        supervision,
        lambda: tenants_with_live_waves(context.instance),
        cursor=context.cursor,
        budget_seconds=TICK_BUDGET_SECONDS,
    )
    context.update_cursor(tick.cursor)
    requests: list[dg.RunRequest] = []
    for wave in tick.waves:
        context.log.info(
            f"tenant {wave.tenant_id}: wave {wave.wave_id} with {len(wave.session_ids)} "
            "sessions: " + ", ".join(wave.session_ids)
        )
        requests.append(
            dg.RunRequest(
                run_key=wave.wave_id,
                run_config=wave.run_config(),
                tags=wave.tags(),
                partition_key=wave.tenant_id,
            )
        )
    if not requests:
        return dg.SkipReason(
            f"{len(tick.visited)} tenants with work, no session waiting within quota"
        )
    # A wave's partition must exist before its run: Dagster adds these first.
    partitions = missing_tenant_partitions(
        context.instance, {request.partition_key for request in requests if request.partition_key}
    )
    return dg.SensorResult(run_requests=requests, dynamic_partitions_requests=partitions)
