"""A tenant's agents (`services.agent_registry`): register, list, show, drain / deactivate /
activate, remove; which agent routing would pick for given capabilities and why not the others;
each agent's performance. Writes need LEAD, reads VIEWER (checked by the service).

The API does not probe a server at registration (the CLI's `--check`): the wave's link to it
decides its health when routing. Only the name of the variable holding the server's password is
taken, never a password.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api.authentication import CallerDep
from api.request_body import RequestBody
from api.services import ServicesDep
from domain.agent import MAX_CAPACITY, MIN_CAPACITY, Agent, AgentStatus
from domain.clock import utcnow

router = APIRouter(prefix="/agents", tags=["agents"])


class NewAgent(RequestBody):
    name: str = Field(min_length=1, max_length=200)
    server_url: str = Field(min_length=1, max_length=2000)
    password_env: str | None = Field(default=None, max_length=200)
    opencode_agent: str = Field(default="build", min_length=1, max_length=100)
    permission_policy: str | None = None
    model: str | None = Field(default=None, max_length=200)
    capabilities: list[str] = Field(default_factory=list, max_length=50)
    capacity: int = Field(default=5, ge=MIN_CAPACITY, le=MAX_CAPACITY)


class AgentOut(BaseModel):
    id: str
    name: str
    server_url: str
    password_env: str | None
    opencode_agent: str
    permission_policy: str | None
    model: str | None
    capabilities: list[str]
    capacity: int
    status: AgentStatus
    active: bool
    active_sessions: int | None = None
    tier: str
    success_rate: float | None
    breaker: str
    last_heartbeat_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, agent: Agent, active_sessions: int | None = None) -> AgentOut:
        performance = agent.performance
        return cls(
            **agent.model_dump(
                include={
                    "id",
                    "name",
                    "server_url",
                    "password_env",
                    "opencode_agent",
                    "permission_policy",
                    "model",
                    "capabilities",
                    "capacity",
                    "status",
                    "last_heartbeat_at",
                    "created_at",
                }
            ),
            active=agent.active,
            active_sessions=active_sessions,
            tier=performance.tier.value,
            success_rate=performance.success_rate,
            breaker=performance.breaker_state(utcnow()).value,
        )


class Performance(BaseModel):
    agent_id: str
    tasks_total: int
    tasks_succeeded: float
    success_rate: float | None
    quality: float
    recent: list[float]
    tier: str
    breaker: str
    breaker_opened_at: datetime | None


class Candidate(BaseModel):
    agent_id: str
    name: str
    active_sessions: int
    capacity: int
    eligible: bool
    score: float | None
    refusal: str | None


class RoutingPreviewOut(BaseModel):
    required: list[str]
    chosen_agent_id: str | None
    reason: str
    candidates: list[Candidate]


class Removed(BaseModel):
    id: str
    name: str
    removed: bool = True


@router.post("", status_code=201)
def register(body: NewAgent, caller: CallerDep, wiring: ServicesDep) -> AgentOut:
    assert caller.tenant_id is not None
    agent = Agent(tenant_id=caller.tenant_id, **body.model_dump())
    registered = wiring.factory.agents().register(caller, agent, check=False)
    return AgentOut.of(registered, 0)


@router.get("")
def list_agents(caller: CallerDep, wiring: ServicesDep) -> list[AgentOut]:
    assert caller.tenant_id is not None
    views = wiring.factory.agents().list(caller, caller.tenant_id)
    return [AgentOut.of(view.agent, view.active_sessions) for view in views]


# Declared before /agents/{agent_id}: a literal segment after a parameter would be shadowed.
@router.get("/routing-preview")
def routing_preview(
    caller: CallerDep,
    wiring: ServicesDep,
    capability: Annotated[list[str] | None, Query(max_length=50)] = None,
) -> RoutingPreviewOut:
    """Which agent would take a session needing these capabilities now, and why not the others
    (nothing is routed)."""
    assert caller.tenant_id is not None
    preview = wiring.factory.agents().preview_routing(caller, caller.tenant_id, capability or [])
    decision = preview.decision
    return RoutingPreviewOut(
        required=preview.required,
        chosen_agent_id=decision.agent_id if decision else None,
        reason=decision.reason if decision else "no agent would take it now",
        candidates=[
            Candidate(
                agent_id=c.agent.id,
                name=c.agent.name,
                active_sessions=c.active_sessions,
                capacity=c.agent.capacity,
                eligible=c.refusal is None,
                score=c.score,
                refusal=c.refusal,
            )
            for c in preview.candidates
        ],
    )


@router.get("/{agent_id}")
def show(agent_id: str, caller: CallerDep, wiring: ServicesDep) -> AgentOut:
    assert caller.tenant_id is not None
    view = wiring.factory.agents().get(caller, caller.tenant_id, agent_id)
    return AgentOut.of(view.agent, view.active_sessions)


@router.get("/{agent_id}/performance")
def performance(agent_id: str, caller: CallerDep, wiring: ServicesDep) -> Performance:
    assert caller.tenant_id is not None
    agent = wiring.factory.agents().get(caller, caller.tenant_id, agent_id).agent
    record = agent.performance
    return Performance(
        agent_id=agent.id,
        tasks_total=record.tasks_total,
        tasks_succeeded=record.tasks_succeeded,
        success_rate=record.success_rate,
        quality=record.quality,
        recent=list(record.recent),
        tier=record.tier.value,
        breaker=record.breaker_state(utcnow()).value,
        breaker_opened_at=record.breaker_opened_at,
    )


@router.post("/{agent_id}/drain")
def drain(agent_id: str, caller: CallerDep, wiring: ServicesDep) -> AgentOut:
    """No new sessions; the ones on it run to their end (the step before removing it)."""
    assert caller.tenant_id is not None
    return AgentOut.of(wiring.factory.agents().drain(caller, caller.tenant_id, agent_id))


@router.post("/{agent_id}/deactivate")
def deactivate(agent_id: str, caller: CallerDep, wiring: ServicesDep) -> AgentOut:
    assert caller.tenant_id is not None
    return AgentOut.of(wiring.factory.agents().deactivate(caller, caller.tenant_id, agent_id))


@router.post("/{agent_id}/activate")
def activate(agent_id: str, caller: CallerDep, wiring: ServicesDep) -> AgentOut:
    assert caller.tenant_id is not None
    return AgentOut.of(wiring.factory.agents().activate(caller, caller.tenant_id, agent_id))


@router.delete("/{agent_id}")
def remove(agent_id: str, caller: CallerDep, wiring: ServicesDep) -> Removed:
    """Refused (409 agent_busy, nothing changed) while sessions are on it: drain it first."""
    assert caller.tenant_id is not None
    agent = wiring.factory.agents().remove(caller, caller.tenant_id, agent_id)
    return Removed(id=agent.id, name=agent.name)
