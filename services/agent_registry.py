"""A tenant's agents: registering, reading, the lifecycle and removal, for every caller.

The one place agents are written on behalf of a caller (the CLI as the operator, the coming
API as a tenant's user): roles are checked here. Registering, the lifecycle and removal need
LEAD or higher of the agent's tenant (or the operator); reading needs VIEWER.

One runtime serves one tenant: an agent's server is claimed by its tenant (see
`resources.database.repositories.agent_servers`), so another tenant's registration on it is
refused (`ServerInUse`). Only http(s) URLs, plain http to this host unless the operator allows
it, and a password variable named `INDORCH_AGENT_PASSWORD_...` (see
`domain.agent_server_address`).

Lifecycle (see `domain.agent`): `drain` and `deactivate` stop new sessions from being routed
to the agent (routing reads ACTIVE agents only) while the sessions on it run to their end;
`activate` puts it back. `remove` is refused while any session is queued, running, degraded
or paused on it; the count and the delete share one transaction with the agent's row locked.
A wave that routed a session to an ACTIVE agent a moment before (its RUNNING state not yet
written) is not in that count; a drained agent gets no new sessions, so drain first (as
`AgentBusy` advises) and the count is final.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime

from domain.agent import Agent, AgentStatus
from domain.agent_server_address import password_env_problem, server_key, server_url_problem
from domain.caller import Caller
from domain.clock import utcnow
from domain.errors import (
    AgentBusy,
    AlreadyExists,
    ConcurrentModification,
    InvalidInput,
    NoAgentAvailable,
)
from domain.ids import new_agent_id
from domain.routing import AgentState, RoutingDecision, choose_agent, refusal_reason, score
from domain.runtime import RUNTIME_AGENT_NAME
from domain.session_permissions import ALLOW
from domain.tenant import Role
from resources import settings
from resources.database import Database, UnitOfWork, tenant_scope, unit_of_work

HealthCheck = Callable[[Agent], None]  # raises (e.g. AgentServerError) unless the server answers
WRITE_ROLE = Role.LEAD
READ_ROLE = Role.VIEWER


@dataclass(frozen=True)
class AgentView:
    """An agent and the sessions on it now (queued, running, degraded or paused)."""

    agent: Agent
    active_sessions: int


@dataclass(frozen=True)
class RoutingCandidate:
    """One agent as routing would judge it now: its score if eligible, else why not."""

    agent: Agent
    active_sessions: int
    score: float | None
    refusal: str | None


@dataclass(frozen=True)
class RoutingPreview:
    """Which agent would take a session needing `required` now, and why not the others."""

    required: list[str]
    decision: RoutingDecision | None  # None: no agent would take it now
    candidates: list[RoutingCandidate]


class AgentRegistry:
    def __init__(
        self,
        database: Database,
        health_check: HealthCheck | None = None,
        clock: Callable[[], datetime] = utcnow,
        allow_plain_http: bool | None = None,  # None: INDORCH_ALLOW_PLAIN_HTTP_AGENTS
    ) -> None:
        self._database = database
        self._health_check = health_check
        self._clock = clock
        self._allow_plain_http = (
            settings.allow_plain_http_agents() if allow_plain_http is None else allow_plain_http
        )

    # -- writes -------------------------------------------------------------------------------

    def register(self, caller: Caller, agent: Agent, check: bool = True) -> Agent:
        """Add the agent; with `check`, only if its server answers the health check (run outside
        any transaction, so no lock is held while the server is waited for). `ServerInUse` when
        another tenant's agent holds the server: checked before the server is called, and again
        (by the claim's key, race-free) when the agent is written."""
        self._allow(caller, agent.tenant_id, WRITE_ROLE, "registering an agent")
        if agent.permission_policy == ALLOW:
            caller.require_operator("registering an agent that allows permission requests")
        self._require_reachable_safely(agent)
        key = server_key(agent.server_url)
        # Each transaction locks the tenant's row first: on SQLite that takes the write lock
        # before anything is read, so concurrent registrations queue rather than fail.
        with tenant_scope(agent.tenant_id), unit_of_work(self._database) as uow:
            uow.tenants.get_for_update(agent.tenant_id)
            if any(existing.name == agent.name for existing in uow.agents.list()):
                raise AlreadyExists("agent", agent.name)
            with uow.session.begin_nested() as trial:  # refused early; taken for real below
                uow.agent_servers.claim(key)
                trial.rollback()
        if check and self._health_check is not None:
            self._health_check(agent)
            agent.last_heartbeat_at = self._clock()
        with tenant_scope(agent.tenant_id), unit_of_work(self._database) as uow:
            uow.tenants.get_for_update(agent.tenant_id)
            uow.agent_servers.claim(key)
            uow.agents.add(agent)
        return agent

    def attach_runtime(
        self, caller: Caller, tenant_id: str, server_url: str, password_sealed: str
    ) -> Agent:
        """A new agent of the tenant for its (re)started managed runtime; the earlier ones are
        deactivated, and removed once no session is on them. A new agent, not the old one
        pointed elsewhere: a running wave keeps its link to the old server, finds it gone and
        orphans its sessions (the retry path), while new routing sees only the new agent.
        The platform's alone: a tenant cannot point an agent at a server of its choosing here.
        The runtime's server is claimed by the tenant like any agent's (`ServerInUse` if another
        tenant holds its address: the start fails and is tried again on another port)."""
        caller.require_operator("attaching a managed runtime")
        key = server_key(server_url)
        agent = Agent(
            tenant_id=tenant_id,
            name=f"{RUNTIME_AGENT_NAME}-{new_agent_id()[-8:].lower()}",
            server_url=server_url,
            password_sealed=password_sealed,
            last_heartbeat_at=self._clock(),
        )
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            uow.tenants.get_for_update(tenant_id)
            uow.agent_servers.claim(key)
            uow.agents.add(agent)
            busy = uow.sessions.active_by_agent()
            for earlier in uow.agents.list():
                if earlier.id == agent.id or not earlier.name.startswith(RUNTIME_AGENT_NAME):
                    continue
                if busy.get(earlier.id, 0):
                    if earlier.status is not AgentStatus.INACTIVE:
                        earlier.change_status(AgentStatus.INACTIVE)
                        uow.agents.save(earlier)
                else:
                    uow.agents.remove(earlier.id)
                    _release_if_unused(uow, earlier.server_url)
        return agent

    def drain(self, caller: Caller, tenant_id: str, agent_id: str) -> Agent:
        """No new sessions; the ones on it finish (the step before `remove`)."""
        return self._change_status(caller, tenant_id, agent_id, AgentStatus.DRAINING, "draining")

    def deactivate(self, caller: Caller, tenant_id: str, agent_id: str) -> Agent:
        return self._change_status(
            caller, tenant_id, agent_id, AgentStatus.INACTIVE, "deactivating"
        )

    def activate(self, caller: Caller, tenant_id: str, agent_id: str) -> Agent:
        """Back to taking sessions, under today's rules: `ServerInUse` when another tenant holds
        its server, `InvalidInput` when its password variable lacks the prefix."""
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
            _release_if_unused(uow, agent.server_url)
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

    def preview_routing(
        self, caller: Caller, tenant_id: str, required: Collection[str] = ()
    ) -> RoutingPreview:
        """Routing's choice for a session needing `required`, decided by the domain's rule on
        the agents and their load now (each server taken as answering: only a wave's link to it
        knows otherwise). Nothing is routed or written."""
        self._allow(caller, tenant_id, READ_ROLE, "previewing routing")
        needed = sorted({capability.lower() for capability in required})
        now = self._clock()
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            agents = uow.agents.list()
            busy = uow.sessions.active_by_agent()
        states = [AgentState(agent, busy.get(agent.id, 0), now=now) for agent in agents]
        candidates = []
        for state in states:
            refusal = refusal_reason(state, set(needed))
            candidates.append(
                RoutingCandidate(
                    state.agent,
                    state.active_sessions,
                    None if refusal else score(state, set(needed)),
                    refusal,
                )
            )
        try:
            decision: RoutingDecision | None = choose_agent(states, needed)
        except NoAgentAvailable:
            decision = None
        return RoutingPreview(needed, decision, candidates)

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
            if target is AgentStatus.ACTIVE:
                self._require_reachable_safely(agent)
                uow.agent_servers.claim(server_key(agent.server_url))
            agent.change_status(target)
            uow.agents.save(agent)
        return agent

    def _require_reachable_safely(self, agent: Agent) -> None:
        """http(s) only, plain http to loopback unless allowed; a prefixed password variable."""
        problem = server_url_problem(agent.server_url, self._allow_plain_http)
        if problem:
            raise InvalidInput("server_url", problem)
        if agent.password_env is not None:
            problem = password_env_problem(agent.password_env)
            if problem:
                raise InvalidInput("password-env", problem)

    @staticmethod
    def _allow(caller: Caller, tenant_id: str, role: Role, action: str) -> None:
        caller.require_tenant(tenant_id)
        caller.require(role, action)


def _release_if_unused(uow: UnitOfWork, server_url: str) -> None:
    """The tenant's claim on a server goes with its last agent there."""
    key = _key_or_none(server_url)
    if key and all(_key_or_none(other.server_url) != key for other in uow.agents.list()):
        uow.agent_servers.release(key)


def _key_or_none(server_url: str) -> str | None:
    """The server's key; None for a URL stored before the rules (never claimed)."""
    try:
        return server_key(server_url)
    except ValueError:
        return None
