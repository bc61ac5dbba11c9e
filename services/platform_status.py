"""The platform as monitoring sees it: readiness (is it fit to serve?) and the fleet's figures.

Readiness asks every dependency now, all at once, each within `timeout_seconds`:

- the database (``SELECT 1``): the truth; down makes the platform **down** (HTTP 503);
- Redis (``PING``, when configured), the Dagster daemon (its heartbeats in the instance's
  storage, when ``DAGSTER_HOME`` is known) and the active agents' OpenCode servers (each probed
  on its health endpoint): any of them down makes it **degraded** — still serving (live events
  from the database, sessions waiting for an agent or for the daemon), so HTTP 200.

Neither answer carries a secret: no URL, no password, no agent address; agents are counted.

The fleet snapshot is what `/metrics` exposes, read per active tenant in its scope as the
operator: sessions per status, the queue (PENDING and QUEUED), each agent's load, capacity and
breaker state, tokens and cost so far (the live usage counters), and the durations of the
sessions that ended in the last `DURATION_WINDOW`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import httpx
from pydantic import BaseModel, ConfigDict

from domain.agent import Agent
from domain.clock import utcnow
from domain.session import SessionStatus
from resources.dagster_daemon_health import DEFAULT_TOLERANCE_SECONDS, check_daemon
from resources.database import Database, tenant_scope, unit_of_work
from resources.health import (
    DEFAULT_TIMEOUT_SECONDS,
    DependencyHealth,
    DependencyStatus,
    OverallStatus,
    Probe,
    ping,
    select_one,
)
from resources.opencode.control import client_for
from resources.opencode.errors import AgentServerError

logger = logging.getLogger(__name__)

DURATION_WINDOW = timedelta(hours=1)
QUEUED_STATES = (SessionStatus.PENDING, SessionStatus.QUEUED)


class AgentsHealth(BaseModel):
    model_config = ConfigDict(frozen=True)

    status: DependencyStatus
    up: int = 0
    total: int = 0


class Readiness(BaseModel):
    model_config = ConfigDict(frozen=True)

    status: OverallStatus
    database: DependencyStatus
    redis: DependencyStatus
    dagster: DependencyStatus
    agents: AgentsHealth
    checked_at: datetime

    @property
    def ready(self) -> bool:
        return self.status is not OverallStatus.DOWN


@dataclass(frozen=True)
class AgentFigures:
    tenant_id: str
    agent_id: str
    status: str
    capacity: int
    active_sessions: int
    breaker: str


@dataclass(frozen=True)
class TenantFigures:
    tenant_id: str
    sessions_by_status: dict[str, int]
    agents: list[AgentFigures]
    tokens_in: int
    tokens_out: int
    cost_usd: float
    recent_durations: list[float] = field(default_factory=list)

    @property
    def queue_depth(self) -> int:
        return sum(self.sessions_by_status.get(s.value, 0) for s in QUEUED_STATES)


class PlatformStatus:
    def __init__(
        self,
        database: Database,
        redis_url: str | None,
        dagster_home: str | None,
        *,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        daemon_tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._database = database
        self._redis_url = redis_url
        self._dagster_home = dagster_home
        self._timeout = timeout_seconds
        self._daemon_tolerance = daemon_tolerance_seconds
        self._clock = clock

    # -- readiness ----------------------------------------------------------------------------

    def readiness(self) -> Readiness:
        checked_at = self._clock()
        deadline = time.monotonic() + self._timeout
        database = Probe(lambda: select_one(self._database))
        redis = Probe(lambda: ping(self._redis_url, self._timeout)) if self._redis_url else None
        dagster = (
            Probe(lambda: check_daemon(self._dagster_home, self._daemon_tolerance))
            if self._dagster_home
            else None
        )
        agents_found: list[AgentsHealth] = []
        agents = Probe(lambda: agents_found.append(self._agents_health(deadline)))
        results = {
            "database": database.result(deadline, self._timeout),
            "redis": _or_unconfigured(redis, deadline, self._timeout),
            "dagster": _or_unconfigured(dagster, deadline, self._timeout),
        }
        agents_result = agents.result(deadline + 0.5, self._timeout)
        for name, health in results.items():
            if health.status is DependencyStatus.DOWN:
                logger.warning("readiness: %s is down: %s", name, health.detail)
        if agents_found:
            agents_health = agents_found[0]
        else:  # the database did not answer in time: the agents are unknown
            logger.warning("readiness: agents unknown: %s", agents_result.detail)
            agents_health = AgentsHealth(status=DependencyStatus.DOWN)
        status = _overall(
            results["database"].status,
            [results["redis"].status, results["dagster"].status, agents_health.status],
        )
        return Readiness(
            status=status,
            database=results["database"].status,
            redis=results["redis"].status,
            dagster=results["dagster"].status,
            agents=agents_health,
            checked_at=checked_at,
        )

    def _agents_health(self, deadline: float) -> AgentsHealth:
        agents = [agent for figures in self._active_agents() for agent in figures]
        if not agents:
            return AgentsHealth(status=DependencyStatus.NOT_CONFIGURED)
        left = max(deadline - time.monotonic(), 0.1)
        answered = asyncio.run(_probe_agents(agents, left))
        up = sum(answered)
        status = DependencyStatus.OK if up == len(agents) else DependencyStatus.DOWN
        return AgentsHealth(status=status, up=up, total=len(agents))

    def _active_agents(self) -> list[list[Agent]]:
        with unit_of_work(self._database) as uow:
            tenants = uow.tenants.active_slugs()
        found = []
        for tenant in tenants:
            with tenant_scope(tenant), unit_of_work(self._database) as uow:
                found.append(uow.agents.list(active_only=True))
        return found

    # -- the fleet's figures ------------------------------------------------------------------

    def snapshot(self) -> list[TenantFigures]:
        now = self._clock()
        with unit_of_work(self._database) as uow:
            tenants = uow.tenants.active_slugs()
        return [self._tenant_figures(tenant, now) for tenant in tenants]

    def _tenant_figures(self, tenant: str, now: datetime) -> TenantFigures:
        with tenant_scope(tenant), unit_of_work(self._database) as uow:
            by_status = uow.sessions.count_by_status()
            agents = uow.agents.list()
            load = uow.sessions.active_by_agent()
            usage = uow.usage.between(date.min, date.max)
            durations = uow.sessions.recent_durations(now - DURATION_WINDOW)
        return TenantFigures(
            tenant_id=tenant,
            sessions_by_status=by_status,
            agents=[
                AgentFigures(
                    tenant_id=tenant,
                    agent_id=agent.id,
                    status=agent.status.value,
                    capacity=agent.capacity,
                    active_sessions=load.get(agent.id, 0),
                    breaker=agent.performance.breaker_state(now).value,
                )
                for agent in agents
            ],
            tokens_in=sum(day.tokens_in for day in usage),
            tokens_out=sum(day.tokens_out for day in usage),
            cost_usd=float(sum(day.cost_usd for day in usage)),
            recent_durations=durations,
        )


async def _probe_agents(agents: list[Agent], timeout_seconds: float) -> list[bool]:
    timeout = httpx.Timeout(timeout_seconds, connect=min(timeout_seconds, 1.0))

    async def one(agent: Agent) -> bool:
        try:
            async with client_for(agent, timeout) as client:
                await client.health()
        except (AgentServerError, httpx.HTTPError, OSError):
            return False
        except Exception:  # a password that cannot be opened, ...: not answering as it should
            logger.exception("probing agent %s of %s", agent.id, agent.tenant_id)
            return False
        return True

    return list(await asyncio.gather(*(one(agent) for agent in agents)))


def _or_unconfigured(probe: Probe | None, deadline: float, timeout: float) -> DependencyHealth:
    if probe is None:
        return DependencyHealth(status=DependencyStatus.NOT_CONFIGURED)
    return probe.result(deadline, timeout)


def _overall(database: DependencyStatus, others: list[DependencyStatus]) -> OverallStatus:
    if database is not DependencyStatus.OK:
        return OverallStatus.DOWN
    if DependencyStatus.DOWN in others:
        return OverallStatus.DEGRADED
    return OverallStatus.OK
