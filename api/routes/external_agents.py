"""EAP v1 (External Agent Protocol): register an external agent, its heartbeats, its results.

Registering takes a tenant's API key (LEAD or higher) and answers the agent's token once; the
agent then calls with `X-Agent-Token` and `X-Tenant-ID` (no API key): a token of another tenant,
or none, answers 401. Assignments go the other way: the platform POSTs them to the agent's
endpoint (`services.supervision.external_dispatch`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header
from pydantic import BaseModel, ConfigDict, Field

from api.authentication import CallerDep, tenant_id_header
from api.errors import UNAUTHORIZED_HEADERS, ApiError
from api.services import Services, services
from domain.agent import MAX_CAPACITY, MIN_CAPACITY, Agent
from domain.external_agent import HEARTBEAT_INTERVAL_SECONDS, PROTOCOL, TaskResult

router = APIRouter(prefix="/eap", tags=["external agents (EAP)"])


class ExternalAgentRegistration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    endpoint_url: str = Field(
        min_length=1,
        max_length=2000,
        description="Where assignments are POSTed: https, or plain http to this host only "
        "unless the operator allows it (INDORCH_ALLOW_PLAIN_HTTP_AGENTS=1).",
    )
    capabilities: list[str] = Field(default_factory=list, max_length=50)
    capacity: int = Field(default=1, ge=MIN_CAPACITY, le=MAX_CAPACITY)
    model: str | None = Field(default=None, max_length=200)


class ExternalAgentView(BaseModel):
    id: str
    name: str
    endpoint_url: str
    capabilities: list[str]
    capacity: int
    status: str
    protocol: str = PROTOCOL

    @classmethod
    def of(cls, agent: Agent) -> ExternalAgentView:
        return cls(
            id=agent.id,
            name=agent.name,
            endpoint_url=agent.server_url,
            capabilities=agent.capabilities,
            capacity=agent.capacity,
            status=agent.status.value,
        )


class Registered(BaseModel):
    agent: ExternalAgentView
    token: str = Field(description="Shown this once; only its SHA-256 is kept.")


class Heartbeat(BaseModel):
    agent_id: str
    status: str
    heartbeat_interval_seconds: int = HEARTBEAT_INTERVAL_SECONDS


class ResultAccepted(BaseModel):
    session_id: str
    status: str


def agent_token(
    x_agent_token: Annotated[str | None, Header(alias="X-Agent-Token")] = None,
) -> str:
    if not x_agent_token or not x_agent_token.strip():
        raise ApiError(
            401, "unauthorized", "X-Agent-Token is required", headers=UNAUTHORIZED_HEADERS
        )
    return x_agent_token.strip()


TenantId = Annotated[str, Depends(tenant_id_header)]
Token = Annotated[str, Depends(agent_token)]
Wiring = Annotated[Services, Depends(services)]


@router.post("/agents", status_code=201)
def register(body: ExternalAgentRegistration, caller: CallerDep, wiring: Wiring) -> Registered:
    """Register an external agent of the caller's tenant (LEAD or higher)."""
    assert caller.tenant_id is not None
    agent, token = wiring.factory.external_agents().register(
        caller,
        caller.tenant_id,
        name=body.name,
        endpoint_url=body.endpoint_url,
        capabilities=body.capabilities,
        capacity=body.capacity,
        model=body.model,
    )
    return Registered(agent=ExternalAgentView.of(agent), token=token)


@router.post("/heartbeat")
def heartbeat(tenant_id: TenantId, token: Token, wiring: Wiring) -> Heartbeat:
    """The agent is alive: it stays in routing while it beats within the TTL."""
    agent = wiring.factory.external_agents().heartbeat(tenant_id, token)
    return Heartbeat(agent_id=agent.id, status=agent.status.value)


@router.post("/sessions/{session_id}/result", status_code=202)
def post_result(
    session_id: str, body: TaskResult, tenant_id: TenantId, token: Token, wiring: Wiring
) -> ResultAccepted:
    """The result of an assignment: ends the session (404 if it is not this agent's)."""
    session = wiring.factory.external_agents().accept_result(tenant_id, token, session_id, body)
    return ResultAccepted(session_id=session.id, status=session.status.value)
