"""A tenant's API keys are created and revoked by its ADMIN (or the operator) and listed from
VIEWER up; a lower role or another tenant's caller is refused, and no key is written or revoked."""

from __future__ import annotations

import pytest

from domain.caller import Caller
from domain.errors import PermissionDenied, TenantMismatch
from domain.tenant import Role
from services.factory import ServiceFactory
from tests.integration.admin.conftest import OPERATOR


def test_a_tenants_admin_creates_and_revokes_keys_and_its_viewer_lists_them(
    services: ServiceFactory, tenant: str
) -> None:
    keys = services.api_keys()
    admin = Caller.for_tenant(tenant, Role.ADMIN)
    key, plaintext = keys.create(admin, tenant, "ci", role=Role.MEMBER)
    assert plaintext.startswith(key.prefix)

    assert keys.revoke(admin, tenant, key.id).revoked_at is not None
    [listed] = keys.list(Caller.for_tenant(tenant, Role.VIEWER), tenant)
    assert (listed.id, listed.revoked_at is not None) == (key.id, True)


@pytest.mark.parametrize("role", [Role.LEAD, Role.MEMBER, Role.VIEWER])
def test_a_role_below_admin_cannot_create_or_revoke_a_key_and_nothing_changes(
    services: ServiceFactory, tenant: str, role: Role
) -> None:
    keys = services.api_keys()
    key, _ = keys.create(OPERATOR, tenant, "existing")
    caller = Caller.for_tenant(tenant, role)

    with pytest.raises(PermissionDenied, match="create an API key needs the role ADMIN"):
        keys.create(caller, tenant, "escalate", role=Role.ADMIN)
    with pytest.raises(PermissionDenied, match="revoke an API key needs the role ADMIN"):
        keys.revoke(caller, tenant, key.id)

    [listed] = keys.list(OPERATOR, tenant)
    assert (listed.id, listed.revoked_at) == (key.id, None)


def test_another_tenants_admin_cannot_touch_a_tenants_keys_and_nothing_changes(
    services: ServiceFactory, tenant: str, other_tenant: str
) -> None:
    keys = services.api_keys()
    key, _ = keys.create(OPERATOR, tenant, "existing")
    intruder = Caller.for_tenant(other_tenant, Role.ADMIN)

    with pytest.raises(TenantMismatch):
        keys.create(intruder, tenant, "planted")
    with pytest.raises(TenantMismatch):
        keys.revoke(intruder, tenant, key.id)
    with pytest.raises(TenantMismatch):
        keys.list(intruder, tenant)

    [listed] = keys.list(OPERATOR, tenant)
    assert (listed.id, listed.revoked_at) == (key.id, None)
    assert keys.list(OPERATOR, other_tenant) == []
