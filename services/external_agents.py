"""External agents (EAP v1, `domain.external_agent`): registering one, its heartbeats, and the
results it posts back.

Registering is the agent registry's write (LEAD or higher, the endpoint under the OpenCode
servers' URL rules and claimed by one tenant); here it also gets a token, returned once and kept
as its SHA-256. Heartbeats and results carry no API key: the agent's token (with the tenant's
id) is the credential, so they take the token rather than a `Caller`, and everything they touch
is that agent's own (its row, the sessions assigned to it).

A result ends the session it answers (COMPLETED, PARTIALLY_COMPLETED or FAILED) in one
transaction with its usage and the agent's performance; the wave waiting on it sees the end
and lets go (`services.supervision.external_dispatch`). A result for a session not assigned to
this agent, or for another assignment of it, is `NotFound` (the API's 404: nothing about other
sessions shows); one for a session that already ended (timed out, stopped) is refused as an
invalid transition (409).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from domain.agent import Agent, AgentKind
from domain.caller import Caller
from domain.clock import utcnow
from domain.errors import AgentTokenRefused, InvalidTransition, NotFound, TenantNotSet
from domain.events import SessionEvent
from domain.external_agent import TaskResult, generate_agent_token, hash_agent_token
from domain.session import Session, SessionStatus
from resources.database import Database, UnitOfWork, tenant_scope, unit_of_work
from services.agent_registry import AgentRegistry

logger = logging.getLogger(__name__)
EventSink = Callable[[SessionEvent], None]
ASSIGNED = frozenset({SessionStatus.RUNNING, SessionStatus.DEGRADED})


class ExternalAgents:
    def __init__(
        self,
        database: Database,
        registry: AgentRegistry,
        publish: EventSink | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._database = database
        self._registry = registry
        self._publish = publish or (lambda event: None)
        self._clock = clock

    def register(
        self,
        caller: Caller,
        tenant_id: str,
        name: str,
        endpoint_url: str,
        capabilities: list[str] | None = None,
        capacity: int = 1,
        model: str | None = None,
    ) -> tuple[Agent, str]:
        """A new external agent and its token (the only time the token is seen). It enters
        routing with its first heartbeat."""
        token = generate_agent_token()
        agent = Agent(
            tenant_id=tenant_id,
            name=name,
            server_url=endpoint_url,
            kind=AgentKind.EXTERNAL,
            token_hash=hash_agent_token(token),
            capabilities=capabilities or [],
            capacity=capacity,
            model=model,
        )
        return self._registry.register(caller, agent, check=False), token

    def authenticate(self, tenant_id: str, token: str) -> Agent:
        """The tenant's external agent holding `token`, else `AgentTokenRefused`."""
        try:
            with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
                return self._agent(uow, tenant_id, token)
        except (NotFound, TenantNotSet):
            raise AgentTokenRefused() from None

    def heartbeat(self, tenant_id: str, token: str) -> Agent:
        """The agent beats now: back in routing (if active) until its beats stop for the TTL."""
        try:
            with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
                agent = self._agent(uow, tenant_id, token)
                agent = uow.agents.get_for_update(agent.id)
                agent.last_heartbeat_at = self._clock()
                uow.agents.save(agent)
        except (NotFound, TenantNotSet):
            raise AgentTokenRefused() from None
        return agent

    def accept_result(
        self, tenant_id: str, token: str, session_id: str, result: TaskResult
    ) -> Session:
        """End the session with the agent's result (see the module docstring)."""
        agent = self.authenticate(tenant_id, token)
        now = self._clock()
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            session = uow.sessions.get(session_id)
            if session.agent_id != agent.id or session.agent_session_id != result.assignment_id:
                raise NotFound("assignment", result.assignment_id)
            target = result.status.session_status
            if session.status not in ASSIGNED:
                raise InvalidTransition("session", session.status.value, target.value)
            session.metrics = session.metrics.model_copy(
                update={
                    "tokens_in": session.metrics.tokens_in + result.tokens_in,
                    "tokens_out": session.metrics.tokens_out + result.tokens_out,
                    "cost_usd": session.metrics.cost_usd + result.cost_usd,
                }
            )
            session.result = {
                "output": result.output,
                "data": result.data,
                "agent_id": agent.id,
                "assignment_id": result.assignment_id,
            }
            if target is SessionStatus.FAILED:
                session.error = {"reason": result.error or "the external agent reported failure"}
            session.lease_owner = None
            session.lease_expires_at = None
            reason = f"result from external agent {agent.name}"
            event = session.transition_to(target, reason, at=now)
            recorded = uow.sessions.save_transition(session, event)
            uow.usage.record(
                now.date(),
                sessions=1,
                tokens_in=result.tokens_in,
                tokens_out=result.tokens_out,
                cost_usd=result.cost_usd,
            )
            locked = uow.agents.get_for_update(agent.id)
            locked.performance = locked.performance.record(target, at=now)
            uow.agents.save(locked)
        self._publish(recorded)
        logger.info("session %s of tenant %s: %s (%s)", session.id, tenant_id, target.value, reason)
        return session

    @staticmethod
    def _agent(uow: UnitOfWork, tenant_id: str, token: str) -> Agent:
        if not uow.tenants.get(tenant_id).active:
            raise NotFound("tenant", tenant_id)
        return uow.agents.by_token_hash(hash_agent_token(token))
