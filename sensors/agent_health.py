"""Agent heartbeats: every registered agent's OpenCode server is probed on `/global/health`.

The result lands in the database (`last_heartbeat_at`, the truth) and, when Redis is configured,
in the heartbeat store with a TTL (what live readers and dashboards look at). A server that does
not answer keeps its last heartbeat, so its age says how long it has been silent. A tick visits
only the tenants with an ACTIVE agent on an OpenCode server (one indexed query across tenants,
`TenantWorkRepository.with_probed_agents`): tenants without one cost it nothing.

A server that answers and holds no workspace of the agent's tenant yet gets it now
(`services.tenant_workspaces.prepare_tenant_workspace`): a worktree takes seconds to make on a
busy server, which the first wave of a burst would otherwise spend before its first session.
When sessions have workspaces of their own (the default) and `warm_slots_ahead` is set, each
live agent's scratch slots are made and warmed ahead instead (`services.slot_warming`): a new
directory's first prompt is the costly part of a burst's start on its server. Both are bounded
per tick (`workspaces_per_health_tick`).
"""

from __future__ import annotations

import asyncio
import logging

import dagster as dg

from domain.agent import Agent
from domain.caller import Caller
from domain.clock import utcnow
from resources.database import Database, tenant_scope
from resources.database_resource import DatabaseResource
from resources.opencode.errors import AgentServerError
from resources.opencode.resource import OpenCodeResource
from resources.redis.resource import RedisResource
from resources.supervision_config import SupervisionConfig
from services.factory import ServiceFactory
from services.session_workspaces import WorkspaceFailed
from services.slot_warming import SlotWarming, WarmUpBudget
from services.tenant_workspaces import prepare_tenant_workspace

TICK_INTERVAL_SECONDS = 15


async def _probe(
    opencode: OpenCodeResource,
    agents: list[Agent],
    workspaces_for: Database | None,
    log: logging.Logger,
    warming: SlotWarming | None = None,
    budget: WarmUpBudget | None = None,
) -> tuple[dict[str, bool], int, int]:
    """Each agent's health, how many tenant workspaces were made and how many slots warmed:
    with `workspaces_for`, a live server (one agent of the tenant's per server) also gets the
    tenant's workspace if it has none recorded; with `warming`, a live agent gets its scratch
    slots made and warmed while `budget` lasts."""
    preparers = {agent.server_url: agent.id for agent in agents} if workspaces_for else {}

    async def one(agent: Agent) -> tuple[str, bool]:
        async with opencode.client_for(agent) as client:
            try:
                await client.health()
            except AgentServerError:
                return agent.id, False
            if workspaces_for is not None and preparers.get(agent.server_url) == agent.id:
                try:
                    if await prepare_tenant_workspace(client, agent.tenant_id, workspaces_for):
                        log.info(f"tenant {agent.tenant_id}: workspace made on agent {agent.id}")
                        made.append(agent.id)
                except AgentServerError as error:  # the tenant's first wave tries again
                    log.warning(f"tenant {agent.tenant_id}: no workspace on {agent.id}: {error}")
            if warming is not None and budget is not None:
                try:
                    warmed.append((await warming.warm_agent(client, agent, budget)).slots)
                except (AgentServerError, WorkspaceFailed) as error:  # the next tick tries again
                    log.warning(f"tenant {agent.tenant_id}: slot not warmed on {agent.id}: {error}")
            return agent.id, True

    made: list[str] = []
    warmed: list[int] = []
    healthy = dict(await asyncio.gather(*(one(agent) for agent in agents)))
    return healthy, len(made), sum(warmed)


@dg.sensor(
    minimum_interval_seconds=TICK_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Probes every agent's OpenCode server and records its heartbeat.",
)
def agent_health_sensor(
    context: dg.SensorEvaluationContext,
    database: DatabaseResource,
    opencode: OpenCodeResource,
    redis: RedisResource,
    supervision: SupervisionConfig,
) -> dg.SkipReason:
    store = redis.heartbeat_store()
    registry = ServiceFactory(database.get_database()).agents()
    settings = supervision.settings()
    workspaces_for = database.get_database() if settings.in_tenant_workspaces else None
    warming = (
        SlotWarming(
            ServiceFactory.from_resources(database, redis, supervision).session_workspaces()
        )
        if settings.session_workspaces and supervision.warm_slots_ahead
        else None
    )
    budget = WarmUpBudget(supervision.workspaces_per_health_tick)
    with database.unit_of_work() as uow:  # only tenants with a server to probe: O(agents)
        tenants = uow.tenant_work.with_probed_agents()
    summary: list[str] = []
    workspaces_made = 0
    for tenant in tenants:
        with tenant_scope(tenant):
            with database.unit_of_work() as uow:
                # External agents (EAP) beat their own hearts; there is no server to probe.
                agents = [a for a in uow.agents.list(active_only=True) if not a.external]
                load = uow.sessions.active_by_agent()
            making = (
                workspaces_for if workspaces_made < supervision.workspaces_per_health_tick else None
            )
            healthy, made, warmed = (
                asyncio.run(_probe(opencode, agents, making, context.log, warming, budget))
                if agents
                else ({}, 0, 0)
            )
            workspaces_made += made
            alive = {agent_id for agent_id, up in healthy.items() if up}
            if alive:
                registry.record_heartbeats(Caller.operator(), tenant, alive, utcnow())
            if store is not None:
                for agent in agents:
                    store.beat(tenant, agent.id, load.get(agent.id, 0), healthy[agent.id])
        down = [agent.name for agent in agents if not healthy[agent.id]]
        summary.append(
            f"{tenant}: {len(agents) - len(down)}/{len(agents)} up"
            + (f", {warmed} slot(s) warmed" if warmed else "")
        )
        if down:
            context.log.warning(f"tenant {tenant}: agents not answering: {', '.join(down)}")
    return dg.SkipReason("; ".join(summary) or "no agent server to probe")
