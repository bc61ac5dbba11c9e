"""Who may register an agent whose profile allows its sessions' permission requests.

Contract: only the operator; a tenant's ADMIN or LEAD registering one is refused, nothing
written; a `wait` or `reject` profile is theirs to register; an unknown policy is refused.
"""

from __future__ import annotations

import pytest

from domain.agent import Agent
from domain.caller import Caller
from domain.errors import InvalidInput, PermissionDenied
from domain.tenant import Role
from services.factory import ServiceFactory


def agent(tenant: str, name: str, policy: str | None) -> Agent:
    return Agent(
        tenant_id=tenant, name=name, server_url="http://127.0.0.1:4096", permission_policy=policy
    )


def test_only_the_operator_registers_an_allowing_profile(
    services: ServiceFactory, tenant: str
) -> None:
    registry = services.agents()
    admin = Caller.for_tenant(tenant, Role.ADMIN)
    with pytest.raises(PermissionDenied):
        registry.register(admin, agent(tenant, "wide", "allow"), check=False)
    assert registry.list(admin, tenant) == []
    registry.register(admin, agent(tenant, "strict", "reject"), check=False)
    registry.register(Caller.operator(), agent(tenant, "wide", "allow"), check=False)
    policies = {
        view.agent.name: view.agent.permission_policy for view in registry.list(admin, tenant)
    }
    assert policies == {"strict": "reject", "wide": "allow"}


def test_an_unknown_policy_is_refused(tenant: str) -> None:
    with pytest.raises(InvalidInput, match="permission_policy"):
        agent(tenant, "odd", "always")
