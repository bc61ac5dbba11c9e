"""A tenant's users are written by its ADMIN (or the operator) and read from VIEWER up; a lower
role or another tenant's caller is refused and no user is written."""

from __future__ import annotations

import pytest

from domain.caller import Caller
from domain.errors import NotFound, PermissionDenied, TenantMismatch
from domain.tenant import Role, User
from services.factory import ServiceFactory
from tests.integration.admin.conftest import OPERATOR


def test_a_tenants_admin_creates_users_and_its_viewer_lists_them(
    services: ServiceFactory, tenant: str
) -> None:
    users = services.users()
    users.create(Caller.for_tenant(tenant, Role.ADMIN), User(tenant_id=tenant, email="a@x.io"))

    listed = users.list(Caller.for_tenant(tenant, Role.VIEWER), tenant)

    assert [u.email for u in listed] == ["a@x.io"]


@pytest.mark.parametrize("role", [Role.LEAD, Role.MEMBER, Role.VIEWER])
def test_a_role_below_admin_cannot_create_a_user_and_nothing_is_written(
    services: ServiceFactory, tenant: str, role: Role
) -> None:
    users = services.users()

    with pytest.raises(PermissionDenied, match="create a user needs the role ADMIN"):
        users.create(Caller.for_tenant(tenant, role), User(tenant_id=tenant, email="b@x.io"))

    assert users.list(OPERATOR, tenant) == []


def test_another_tenants_admin_cannot_create_or_list_users_and_nothing_is_written(
    services: ServiceFactory, tenant: str, other_tenant: str
) -> None:
    users = services.users()
    intruder = Caller.for_tenant(other_tenant, Role.ADMIN)

    with pytest.raises(TenantMismatch):
        users.create(intruder, User(tenant_id=tenant, email="c@x.io"))
    with pytest.raises(TenantMismatch):
        users.list(intruder, tenant)

    assert users.list(OPERATOR, tenant) == []
    assert users.list(OPERATOR, other_tenant) == []


def test_users_of_an_unknown_tenant_are_not_found(services: ServiceFactory) -> None:
    with pytest.raises(NotFound, match="no-such-tenant"):
        services.users().create(OPERATOR, User(tenant_id="no-such-tenant", email="d@x.io"))
