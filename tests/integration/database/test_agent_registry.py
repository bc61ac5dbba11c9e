"""`AgentRegistry` checks the caller's role and tenant on every call, on SQLite and PostgreSQL.

Contract: registering, the lifecycle and removal need LEAD or higher of the agent's tenant (or
the operator); reading needs VIEWER; another tenant's caller is refused; a refused call writes
nothing. A registration whose health check fails writes nothing either.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from domain.agent import Agent, AgentStatus
from domain.caller import Caller
from domain.clock import utcnow
from domain.errors import InvalidInput, PermissionDenied, TenantMismatch
from domain.tenant import Role
from resources.database import Database
from services.agent_registry import AgentRegistry

OPERATOR = Caller.operator()


def new_agent(tenant: str, name: str = "builder") -> Agent:
    """An agent on a server of the tenant's own (one runtime serves one tenant)."""
    return Agent(tenant_id=tenant, name=name, server_url=f"https://{tenant}.example.com")


def names(registry: AgentRegistry, tenant: str) -> list[str]:
    return [view.agent.name for view in registry.list(OPERATOR, tenant)]


@pytest.mark.parametrize("role", [Role.LEAD, Role.ADMIN])
def test_a_lead_or_admin_of_the_tenant_registers_and_removes_agents(
    database: Database, tenant: str, role: Role
) -> None:
    registry, caller = AgentRegistry(database), Caller.for_tenant(tenant, role)
    agent = registry.register(caller, new_agent(tenant), check=False)
    assert registry.drain(caller, tenant, agent.id).status is AgentStatus.DRAINING
    registry.remove(caller, tenant, agent.id)
    assert names(registry, tenant) == []


@pytest.mark.parametrize("role", [Role.MEMBER, Role.VIEWER])
def test_members_and_viewers_may_read_agents_but_not_write_them(
    database: Database, tenant: str, role: Role
) -> None:
    registry, caller = AgentRegistry(database), Caller.for_tenant(tenant, role)
    agent = registry.register(OPERATOR, new_agent(tenant), check=False)
    writes: list[Callable[[], object]] = [
        lambda: registry.register(caller, new_agent(tenant, "other"), check=False),
        lambda: registry.drain(caller, tenant, agent.id),
        lambda: registry.deactivate(caller, tenant, agent.id),
        lambda: registry.activate(caller, tenant, agent.id),
        lambda: registry.remove(caller, tenant, agent.id),
    ]
    for write in writes:
        with pytest.raises(PermissionDenied, match="LEAD"):
            write()
    assert [view.agent.id for view in registry.list(caller, tenant)] == [agent.id]
    view = registry.get(caller, tenant, agent.id)
    assert (view.agent.status, view.active_sessions) == (AgentStatus.ACTIVE, 0)


def test_another_tenants_caller_is_refused_even_as_admin(database: Database, tenant: str) -> None:
    registry = AgentRegistry(database)
    agent = registry.register(OPERATOR, new_agent(tenant), check=False)
    stranger = Caller.for_tenant("someone-else", Role.ADMIN)
    with pytest.raises(TenantMismatch):
        registry.remove(stranger, tenant, agent.id)
    with pytest.raises(TenantMismatch):
        registry.list(stranger, tenant)
    with pytest.raises(TenantMismatch):
        registry.register(stranger, new_agent(tenant, "other"), check=False)
    assert names(registry, tenant) == ["builder"]


def test_a_failed_health_check_registers_nothing(database: Database, tenant: str) -> None:
    def refuse(agent: Agent) -> None:
        raise InvalidInput("server_url", f"{agent.server_url} does not answer")

    registry = AgentRegistry(database, health_check=refuse)
    with pytest.raises(InvalidInput, match="does not answer"):
        registry.register(OPERATOR, new_agent(tenant))
    assert names(registry, tenant) == []
    registered = registry.register(OPERATOR, new_agent(tenant), check=False)
    assert registered.last_heartbeat_at is None  # not checked: no heartbeat claimed


def test_only_the_platform_records_heartbeats_and_only_for_agents_that_answered(
    database: Database, tenant: str
) -> None:
    registry = AgentRegistry(database)
    up = registry.register(OPERATOR, new_agent(tenant, "up"), check=False)
    down = registry.register(OPERATOR, new_agent(tenant, "down"), check=False)
    at = utcnow()
    with pytest.raises(PermissionDenied):
        registry.record_heartbeats(Caller.for_tenant(tenant, Role.ADMIN), tenant, {up.id}, at)
    assert registry.get(OPERATOR, tenant, up.id).agent.last_heartbeat_at is None

    assert registry.record_heartbeats(OPERATOR, tenant, {up.id}, at) == [up.id]

    assert registry.get(OPERATOR, tenant, up.id).agent.last_heartbeat_at == at
    assert registry.get(OPERATOR, tenant, down.id).agent.last_heartbeat_at is None
