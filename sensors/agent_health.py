"""Agent heartbeats: every registered agent's OpenCode server is probed on `/global/health`.

The result lands in the database (`last_heartbeat_at`, the truth) and, when Redis is configured,
in the heartbeat store with a TTL (what live readers and dashboards look at). A server that does
not answer keeps its last heartbeat, so its age says how long it has been silent.
"""

from __future__ import annotations

import asyncio

import dagster as dg

from domain.agent import Agent
from domain.caller import Caller
from domain.clock import utcnow
from resources.database import tenant_scope
from resources.database_resource import DatabaseResource
from resources.opencode.errors import AgentServerError
from resources.opencode.resource import OpenCodeResource
from resources.redis.resource import RedisResource
from services.factory import ServiceFactory

TICK_INTERVAL_SECONDS = 15


async def _probe(opencode: OpenCodeResource, agents: list[Agent]) -> dict[str, bool]:
    async def one(agent: Agent) -> tuple[str, bool]:
        async with opencode.client_for(agent) as client:
            try:
                await client.health()
            except AgentServerError:
                return agent.id, False
            return agent.id, True

    return dict(await asyncio.gather(*(one(agent) for agent in agents)))


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
) -> dg.SkipReason:
    store = redis.heartbeat_store()
    registry = ServiceFactory(database.get_database()).agents()
    with database.unit_of_work() as uow:
        tenants = uow.tenants.active_slugs()
    summary: list[str] = []
    for tenant in tenants:
        with tenant_scope(tenant):
            with database.unit_of_work() as uow:
                # External agents (EAP) beat their own hearts; there is no server to probe.
                agents = [a for a in uow.agents.list(active_only=True) if not a.external]
                load = uow.sessions.active_by_agent()
            healthy = asyncio.run(_probe(opencode, agents)) if agents else {}
            alive = {agent_id for agent_id, up in healthy.items() if up}
            if alive:
                registry.record_heartbeats(Caller.operator(), tenant, alive, utcnow())
            if store is not None:
                for agent in agents:
                    store.beat(tenant, agent.id, load.get(agent.id, 0), healthy[agent.id])
        down = [agent.name for agent in agents if not healthy[agent.id]]
        summary.append(f"{tenant}: {len(agents) - len(down)}/{len(agents)} up")
        if down:
            context.log.warning(f"tenant {tenant}: agents not answering: {', '.join(down)}")
    return dg.SkipReason("; ".join(summary) or "no active tenants")
