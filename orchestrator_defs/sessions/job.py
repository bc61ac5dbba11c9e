"""The `session_wave` job: one run supervises a wave of one tenant's sessions concurrently.

Launched by the dispatch sensor (config: the claimed session ids) or by hand with
`dagster job launch -j session_wave` and a config that names a tenant and a prompt: then the
session is submitted and claimed here, and supervised by the same code.
"""

import asyncio
from collections.abc import Mapping
from datetime import timedelta

import dagster as dg
from pydantic import Field

from assets.coding_sessions import CODING_SESSIONS
from domain.caller import Caller
from domain.clock import utcnow
from resources.dagster_partitions import ensure_tenant_partition, tenant_partitions
from resources.database_resource import DatabaseResource
from resources.opencode.resource import OpenCodeResource
from resources.redis.resource import RedisResource
from resources.supervision_config import SupervisionConfig
from services.factory import ServiceFactory
from services.session_outcome import SessionOutcome
from services.session_service import SubmitSession
from services.top_up import TopUp, claim_next_for
from services.waves import (
    JOB_NAME,
    MAX_RUNTIME_TAG,
    RUNTIME_MARGIN_SECONDS,
    WAVE_OP,
)

FINAL_OR_WAITING = {"COMPLETED", "PARTIALLY_COMPLETED", "FAILED", "TIMEOUT", "STOPPED"}


class WaveConfig(dg.Config):
    tenant: str = Field(description="Tenant slug whose sessions this wave supervises.")
    session_ids: list[str] = Field(default_factory=list, description="Claimed sessions.")
    wave_id: str = Field(default="", description="Lease owner of the sessions (the run key).")
    prompt: str = Field(default="", description="Submit and run one new session (CLI launch).")
    title: str = Field(default="", description="Title of that session (default: the prompt).")


@dg.op(name=WAVE_OP, description="Supervises a wave of one tenant's sessions on their agents.")
def supervise_wave(
    context: dg.OpExecutionContext,
    config: WaveConfig,
    database: DatabaseResource,
    opencode: OpenCodeResource,
    supervision: SupervisionConfig,
    redis: RedisResource,
) -> None:
    if context.has_partition_key and context.partition_key != config.tenant:
        raise dg.Failure(
            f"run of partition {context.partition_key!r} names tenant {config.tenant!r}: "
            "a wave supervises its own partition's tenant only"
        )
    services = ServiceFactory.from_resources(database, redis, supervision)
    owner = config.wave_id or f"run-{context.run_id}"
    session_ids = list(config.session_ids)
    if config.prompt:
        service = services.sessions()
        title = config.title or config.prompt.strip().splitlines()[0][:200]
        submitted = service.submit(
            Caller.operator(), config.tenant, SubmitSession(title=title, prompt=config.prompt)
        )
        claimed = service.claim(config.tenant, submitted.id, owner, supervision.claim_lease)
        context.log.info(f"tenant {config.tenant}: submitted {claimed.id} ({claimed.status})")
        session_ids.append(submitted.id)
    context.log.info(
        f"tenant {config.tenant}: wave {owner} supervises {len(session_ids)} sessions: "
        + ", ".join(session_ids)
    )
    supervisor = services.supervisor(opencode, config.tenant, owner, supervision.settings())
    top_up = (
        None
        if config.prompt
        else wave_top_up(context.run.tags, services, config.tenant, owner, supervision)
    )
    outcomes = asyncio.run(supervisor.run(session_ids, top_up=top_up))
    ensure_tenant_partition(context.instance, config.tenant)
    # One log line for the wave's outcomes (every session id in it, searchable in the run's
    # log); each log line is a write to Dagster's event log, so not one per session.
    context.log.info(
        f"tenant {config.tenant}: wave {owner} ended: "
        + "; ".join(f"{o.session_id} {o.status} ({o.reason})" for o in outcomes)
    )
    for outcome in outcomes:
        if outcome.status in FINAL_OR_WAITING:
            context.log_event(_materialization(outcome))


def wave_top_up(
    run_tags: Mapping[str, str],
    services: ServiceFactory,
    tenant: str,
    owner: str,
    supervision: SupervisionConfig,
) -> TopUp | None:
    """The wave takes on new sessions that can end within its run's runtime budget (the
    dispatcher sized `dagster/max_runtime` for it); a run without the tag does not top up."""
    max_runtime = run_tags.get(MAX_RUNTIME_TAG)
    if supervision.top_up_seconds <= 0 or max_runtime is None:
        return None
    budget = timedelta(seconds=float(max_runtime) - RUNTIME_MARGIN_SECONDS)
    return TopUp(
        claim=claim_next_for(services.sessions(), tenant, owner, supervision.claim_lease),
        size=supervision.wave_size,
        until=utcnow() + budget,
        every_seconds=supervision.top_up_every_seconds,
        linger_seconds=supervision.linger_seconds,
    )


def _materialization(outcome: SessionOutcome) -> dg.AssetMaterialization:
    return dg.AssetMaterialization(
        asset_key=CODING_SESSIONS.key,
        partition=outcome.tenant_id,
        description=f"{outcome.session_id}: {outcome.status}",
        metadata={
            "session_id": dg.MetadataValue.text(outcome.session_id),
            "status": dg.MetadataValue.text(outcome.status),
            "agent_id": dg.MetadataValue.text(outcome.agent_id or "-"),
            "attempts": dg.MetadataValue.int(outcome.attempts),
            "tokens_in": dg.MetadataValue.int(outcome.tokens_in),
            "tokens_out": dg.MetadataValue.int(outcome.tokens_out),
            "cost_usd": dg.MetadataValue.float(outcome.cost_usd),
            "files_changed": dg.MetadataValue.int(outcome.files_changed),
            "duration_seconds": dg.MetadataValue.float(outcome.duration_seconds or 0.0),
            "reason": dg.MetadataValue.text(outcome.reason),
        },
    )


@dg.job(
    name=JOB_NAME,
    description="Supervise a wave of a tenant's coding sessions on OpenCode agents.",
    tags={"indorch/kind": "session-wave"},
    # Partitioned by tenant, so the UI filters runs (and the materializations they log) by
    # tenant; the `tenant` tag stays for the run queue's per-tenant limit.
    partitions_def=tenant_partitions,
    # One op: a second process per run (the multiprocess default) would only add ~100 MB and
    # seconds of start-up to every wave.
    executor_def=dg.in_process_executor,
)
def session_wave() -> None:
    supervise_wave()
