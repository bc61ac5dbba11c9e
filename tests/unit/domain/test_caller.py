"""The caller's identity: roles ordered ADMIN > LEAD > MEMBER > VIEWER, tenants kept apart."""

import pytest

from domain.caller import Caller
from domain.errors import PermissionDenied, TenantMismatch
from domain.tenant import Role


def test_the_operator_holds_every_role_on_every_tenant() -> None:
    operator = Caller.operator()
    operator.require(Role.ADMIN, "delete a tenant")
    operator.require_tenant("acme")
    assert operator.is_operator


@pytest.mark.parametrize(
    ("role", "needed", "allowed"),
    [
        (Role.VIEWER, Role.MEMBER, False),  # a viewer only reads
        (Role.MEMBER, Role.MEMBER, True),  # the needed role itself is enough
        (Role.LEAD, Role.MEMBER, True),  # a higher role is enough
        (Role.LEAD, Role.ADMIN, False),  # a lead is not an admin
    ],
)
def test_a_tenant_caller_needs_the_role_or_a_higher_one(
    role: Role, needed: Role, allowed: bool
) -> None:
    caller = Caller.for_tenant("acme", role)
    if allowed:
        caller.require(needed, "submit a session")
    else:
        with pytest.raises(PermissionDenied, match=f"submit a session needs the role {needed}"):
            caller.require(needed, "submit a session")


def test_a_tenant_caller_cannot_act_on_another_tenant() -> None:
    with pytest.raises(TenantMismatch):
        Caller.for_tenant("acme", Role.ADMIN).require_tenant("globex")


def test_only_the_operator_acts_on_the_platform_itself() -> None:
    Caller.operator().require_operator("create a tenant")
    with pytest.raises(PermissionDenied, match="create a tenant needs the role operator"):
        Caller.for_tenant("acme", Role.ADMIN).require_operator("create a tenant")
