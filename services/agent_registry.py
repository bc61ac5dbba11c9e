"""A tenant's agents: registering, reading, the lifecycle and removal, for every caller.

The one place agents are written on behalf of a caller (the CLI as the operator, the coming
API as a tenant's user): roles are checked here. Registering, the lifecycle and removal need
LEAD or higher of the agent's tenant (or the operator); reading needs VIEWER.

Lifecycle (see `domain.agent`): `drain` and `deactivate` stop new sessions from being routed
to the agent (routing reads ACTIVE agents only) while the sessions on it run to their end;
`activate` puts it back. `remove` is refused while any session is queued, running, degraded
or paused on it; the count and the delete share one transaction with the agent's row locked.
A wave that routed a session to an ACTIVE agent a moment before (its RUNNING state not yet
written) is not in that count; a drained agent gets no new sessions, so drain first (as
`AgentBusy` advises) and the count is final.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from domain.agent import Agent, AgentStatus
from domain.caller import Caller
from domain.clock import utcnow
from domain.errors import AgentBusy, AlreadyExists, ConcurrentModification, InvalidInput
from domain.session_permissions import ALLOW
from domain.tenant import Role
from resources.database import Database, tenant_scope, unit_of_work

HealthCheck = Callable[[Agent], None]  # raises (e.g. AgentServerError) unless the server answers
ENV_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
WRITE_ROLE = Role.LEAD
READ_ROLE = Role.VIEWER


@dataclass(frozen=True)
class AgentView:
    """An agent and the sessions on it now (queued, running, degraded or paused)."""

    agent: Agent
    active_sessions: int


class AgentRegistry:
    def __init__(
        self,
        database: Database,
        health_check: HealthCheck | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._database = database
        self._health_check = health_check
        self._clock = clock

    # -- writes -------------------------------------------------------------------------------

    def register(self, caller: Caller, agent: Agent, check: bool = True) -> Agent:
        """Add the agent; with `check`, only if its server answers the health check (run outside
        any transaction, so no lock is held while the server is waited for)."""
        self._allow(caller, agent.tenant_id, WRITE_ROLE, "registering an agent")
        if agent.permission_policy == ALLOW:
            caller.require_operator("registering an agent that allows permission requests")
        _require_host(agent.server_url)
        _require_env_name(agent.password_env)
        with tenant_scope(agent.tenant_id), unit_of_work(self._database) as uow:
            if any(existing.name == agent.name for existing in uow.agents.list()):
                raise AlreadyExists("agent", agent.name)
        if check and self._health_check is not None:
            self._health_check(agent)
            agent.last_heartbeat_at = self._clock()
        with tenant_scope(agent.tenant_id), unit_of_work(self._database) as uow:
            uow.agents.add(agent)
        return agent

    def drain(self, caller: Caller, tenant_id: str, agent_id: str) -> Agent:
        """No new sessions; the ones on it finish (the step before `remove`)."""
        return self._change_status(caller, tenant_id, agent_id, AgentStatus.DRAINING, "draining")

    def deactivate(self, caller: Caller, tenant_id: str, agent_id: str) -> Agent:
        return self._change_status(
            caller, tenant_id, agent_id, AgentStatus.INACTIVE, "deactivating"
        )

    def activate(self, caller: Caller, tenant_id: str, agent_id: str) -> Agent:
        return self._change_status(caller, tenant_id, agent_id, AgentStatus.ACTIVE, "activating")

    def remove(self, caller: Caller, tenant_id: str, agent_id: str) -> Agent:
        """Delete the agent; `AgentBusy` (nothing changed) while sessions are on it."""
        self._allow(caller, tenant_id, WRITE_ROLE, "removing an agent")
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            agent = uow.agents.get_for_update(agent_id)
            in_flight = uow.sessions.active_by_agent().get(agent.id, 0)
            if in_flight:
                raise AgentBusy(agent.id, in_flight)
            uow.agents.remove(agent.id)
        return agent

    # -- reads --------------------------------------------------------------------------------

    def list(self, caller: Caller, tenant_id: str) -> list[AgentView]:
        self._allow(caller, tenant_id, READ_ROLE, "reading agents")
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            agents = uow.agents.list()
            busy = uow.sessions.active_by_agent()
        return [AgentView(agent, busy.get(agent.id, 0)) for agent in agents]

    def get(self, caller: Caller, tenant_id: str, agent_id: str) -> AgentView:
        self._allow(caller, tenant_id, READ_ROLE, "reading agents")
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            agent = uow.agents.get(agent_id)
            busy = uow.sessions.active_by_agent().get(agent.id, 0)
        return AgentView(agent, busy)

    # -- inside -------------------------------------------------------------------------------

    def record_heartbeats(
        self, caller: Caller, tenant_id: str, alive: Collection[str], at: datetime
    ) -> list[str]:
        """The agents that answered their probe beat at `at` (the platform's health check only).
        One that a session's end changed meanwhile is skipped: the next probe beats it again."""
        caller.require_operator("record agent heartbeats")
        beaten: list[str] = []
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            for agent in uow.agents.list(active_only=True):
                if agent.id not in alive:
                    continue
                agent.last_heartbeat_at = at
                try:
                    uow.agents.save(agent)
                except ConcurrentModification:
                    continue
                beaten.append(agent.id)
        return beaten

    def _change_status(
        self, caller: Caller, tenant_id: str, agent_id: str, target: AgentStatus, action: str
    ) -> Agent:
        self._allow(caller, tenant_id, WRITE_ROLE, f"{action} an agent")
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            agent = uow.agents.get_for_update(agent_id)
            agent.change_status(target)
            uow.agents.save(agent)
        return agent

    @staticmethod
    def _allow(caller: Caller, tenant_id: str, role: Role, action: str) -> None:
        caller.require_tenant(tenant_id)
        caller.require(role, action)


def _require_host(url: str) -> None:
    parts = urlsplit(url)
    if not parts.hostname:
        raise InvalidInput("server_url", f"{url!r} has no host")
    try:
        parts.port  # noqa: B018  (raises on a malformed port)
    except ValueError as error:
        raise InvalidInput("server_url", f"{url!r}: {error}") from None


def _require_env_name(password_env: str | None) -> None:
    if password_env is not None and not ENV_VAR_NAME.fullmatch(password_env):
        raise InvalidInput("password-env", f"{password_env!r} is not an environment variable name")
