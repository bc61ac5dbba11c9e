"""Agents registered by the current tenant (OpenCode servers plus profiles)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer, String, bindparam, delete, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError

from domain.agent import Agent, AgentKind, AgentPerformance, AgentStatus
from domain.errors import AlreadyExists, ConcurrentModification, NotFound
from resources.database.repositories.base import TenantScopedRepository
from resources.database.schema import AgentRow


def _to_domain(row: AgentRow | Row[Any]) -> Agent:
    return Agent(
        id=row.id,
        tenant_id=row.tenant_id,
        name=row.name,
        server_url=row.server_url,
        kind=AgentKind(row.kind),
        token_hash=row.token_hash,
        password_env=row.password_env,
        password_sealed=row.password_sealed,
        opencode_agent=row.opencode_agent,
        permission_policy=row.permission_policy,
        model=row.model,
        capabilities=row.capabilities,
        capacity=row.capacity,
        status=AgentStatus(row.status),
        performance=AgentPerformance.model_validate(row.performance),
        last_heartbeat_at=row.last_heartbeat_at,
        version=row.version,
        created_at=row.created_at,
    )


_AGENTS = AgentRow.__table__
_SAVED_COLUMNS = (
    "server_url",
    "password_env",
    "password_sealed",
    "opencode_agent",
    "permission_policy",
    "model",
    "capabilities",
    "capacity",
    "status",
    "performance",
    "last_heartbeat_at",
)
# Built once: a wave saves its agent's performance with every session it ends.
_SAVE_AGENT = (
    update(_AGENTS)
    .where(
        _AGENTS.c.id == bindparam("agent_id", type_=String),
        _AGENTS.c.tenant_id == bindparam("tenant", type_=String),
        _AGENTS.c.version == bindparam("expected_version", type_=Integer),
    )
    .values(
        {name: bindparam(f"new_{name}", type_=_AGENTS.c[name].type) for name in _SAVED_COLUMNS}
        | {"version": _AGENTS.c.version + 1}
    )
)

_AGENT_FOR_UPDATE = (
    select(_AGENTS)
    .where(
        _AGENTS.c.id == bindparam("agent_id", type_=String),
        _AGENTS.c.tenant_id == bindparam("tenant", type_=String),
    )
    .with_for_update()
)


class AgentRepository(TenantScopedRepository):
    kind = "agent"

    def add(self, agent: Agent) -> Agent:
        tenant = self._owned(agent.tenant_id)
        self._session.add(
            AgentRow(
                id=agent.id,
                tenant_id=tenant,
                name=agent.name,
                server_url=agent.server_url,
                kind=agent.kind.value,
                token_hash=agent.token_hash,
                password_env=agent.password_env,
                password_sealed=agent.password_sealed,
                opencode_agent=agent.opencode_agent,
                permission_policy=agent.permission_policy,
                model=agent.model,
                capabilities=agent.capabilities,
                capacity=agent.capacity,
                status=agent.status.value,
                performance=agent.performance.model_dump(mode="json"),
                last_heartbeat_at=agent.last_heartbeat_at,
                version=agent.version,
                created_at=agent.created_at,
            )
        )
        try:
            self._session.flush()
        except IntegrityError as error:
            raise AlreadyExists(self.kind, agent.name) from error
        return agent

    def get(self, agent_id: str) -> Agent:
        row = self._session.scalars(
            select(AgentRow).where(AgentRow.tenant_id == self.tenant_id, AgentRow.id == agent_id)
        ).first()
        if row is None:
            raise NotFound(self.kind, agent_id)
        return _to_domain(row)

    def get_for_update(self, agent_id: str) -> Agent:
        """The agent, its row locked until the transaction ends: concurrent read-modify-writes
        (waves recording finished sessions) queue instead of failing on the version check."""
        row = (
            self._connection()
            .execute(_AGENT_FOR_UPDATE, {"agent_id": agent_id, "tenant": self.tenant_id})
            .first()
        )
        if row is None:
            raise NotFound(self.kind, agent_id)
        return _to_domain(row)

    def by_token_hash(self, token_hash: str) -> Agent:
        """The current tenant's external agent with this token (`NotFound` otherwise: another
        tenant's token is not found here)."""
        row = self._session.scalars(
            select(AgentRow).where(
                AgentRow.tenant_id == self.tenant_id, AgentRow.token_hash == token_hash
            )
        ).first()
        if row is None:
            raise NotFound(self.kind, "by token")
        return _to_domain(row)

    def list(self, active_only: bool = False) -> list[Agent]:
        query = select(AgentRow).where(AgentRow.tenant_id == self.tenant_id)
        if active_only:
            query = query.where(AgentRow.status == AgentStatus.ACTIVE.value)
        return [_to_domain(row) for row in self._session.scalars(query.order_by(AgentRow.name))]

    def save(self, agent: Agent) -> None:
        """Persist heartbeat, performance, capacity and lifecycle status, version-checked."""
        expected_version = agent.version
        result = self._connection().execute(
            _SAVE_AGENT,
            {
                "agent_id": agent.id,
                "tenant": self.tenant_id,
                "expected_version": expected_version,
                "new_server_url": agent.server_url,
                "new_password_env": agent.password_env,
                "new_password_sealed": agent.password_sealed,
                "new_opencode_agent": agent.opencode_agent,
                "new_permission_policy": agent.permission_policy,
                "new_model": agent.model,
                "new_capabilities": agent.capabilities,
                "new_capacity": agent.capacity,
                "new_status": agent.status.value,
                "new_performance": agent.performance.model_dump(mode="json"),
                "new_last_heartbeat_at": agent.last_heartbeat_at,
            },
        )
        if result.rowcount != 1:
            self.get(agent.id)
            raise ConcurrentModification(self.kind, agent.id, "any", expected_version)
        agent.version = expected_version + 1

    def remove(self, agent_id: str) -> None:
        """Delete the agent (its sessions keep its id in their history)."""
        result = self._session.execute(
            delete(AgentRow)
            .where(AgentRow.tenant_id == self.tenant_id, AgentRow.id == agent_id)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            raise NotFound(self.kind, agent_id)
