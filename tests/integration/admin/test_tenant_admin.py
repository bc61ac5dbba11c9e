"""Tenants are the operator's: a tenant's caller, even its ADMIN, cannot create, deactivate or
delete one (nothing changes), and reads only its own tenant; its ADMIN may rename it."""

from __future__ import annotations

import pytest

from domain.caller import Caller
from domain.errors import InvalidInput, PermissionDenied, TenantMismatch
from domain.tenant import Role, Tenant
from services.factory import ServiceFactory
from tests.integration.admin.conftest import OPERATOR


def test_the_operator_creates_lists_deactivates_and_deletes_tenants(
    services: ServiceFactory, tenant: str
) -> None:
    admin = services.tenants()
    assert tenant in [t.slug for t in admin.list(OPERATOR)]
    assert admin.deactivate(OPERATOR, tenant).active is False
    assert tenant not in [t.slug for t in admin.list(OPERATOR, include_inactive=False)]
    deletion = admin.delete(OPERATOR, tenant)
    assert deletion.worktrees == []  # no worktree anywhere
    assert (deletion.runtime_stopped, deletion.runtime_removed) == (False, [])  # no runtime
    assert tenant not in [t.slug for t in admin.list(OPERATOR)]


def test_a_tenants_admin_cannot_create_a_tenant_and_nothing_is_written(
    services: ServiceFactory, tenant: str
) -> None:
    admin = services.tenants()
    before = admin.list(OPERATOR)
    caller = Caller.for_tenant(tenant, Role.ADMIN)

    with pytest.raises(PermissionDenied, match="create a tenant needs the role operator"):
        admin.create(caller, Tenant(slug="newcomer", name="newcomer"))

    assert admin.list(OPERATOR) == before


@pytest.mark.parametrize("action", ["deactivate", "delete"])
def test_a_tenants_admin_cannot_deactivate_or_delete_even_its_own_tenant(
    services: ServiceFactory, tenant: str, action: str
) -> None:
    admin = services.tenants()
    caller = Caller.for_tenant(tenant, Role.ADMIN)

    with pytest.raises(PermissionDenied, match=f"{action} a tenant needs the role operator"):
        getattr(admin, action)(caller, tenant)

    assert admin.get(OPERATOR, tenant).active is True


def test_a_tenants_viewer_reads_its_own_tenant_and_no_other(
    services: ServiceFactory, tenant: str, other_tenant: str
) -> None:
    admin = services.tenants()
    viewer = Caller.for_tenant(tenant, Role.VIEWER)

    assert admin.get(viewer, tenant).slug == tenant
    assert [t.slug for t in admin.list(viewer)] == [tenant]
    with pytest.raises(TenantMismatch):
        admin.get(viewer, other_tenant)


def test_deleting_a_tenant_removes_its_workspaces_on_this_host(
    services: ServiceFactory, tenant: str, other_tenant: str, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("INDORCH_WORKSPACES_DIR", str(tmp_path))
    for slug in (tenant, other_tenant):
        (tmp_path / slug / "mirrors" / "app.git").mkdir(parents=True)
    services.tenants().delete(OPERATOR, tenant)
    assert not (tmp_path / tenant).exists()
    assert (tmp_path / other_tenant / "mirrors" / "app.git").is_dir()


def test_a_tenants_admin_renames_its_own_tenant_only_and_nothing_else_changes(
    services: ServiceFactory, tenant: str, other_tenant: str
) -> None:
    admin = services.tenants()
    before = admin.get(OPERATOR, tenant)

    renamed = admin.rename(Caller.for_tenant(tenant, Role.ADMIN), tenant, "  Acme Robotics ")

    assert renamed.name == "Acme Robotics"
    after = admin.get(OPERATOR, tenant)
    assert after == before.model_copy(update={"name": "Acme Robotics"})
    with pytest.raises(PermissionDenied, match="rename a tenant needs the role ADMIN"):
        admin.rename(Caller.for_tenant(tenant, Role.LEAD), tenant, "Other")
    with pytest.raises(TenantMismatch):
        admin.rename(Caller.for_tenant(tenant, Role.ADMIN), other_tenant, "Mine now")
    with pytest.raises(InvalidInput):
        admin.rename(Caller.for_tenant(tenant, Role.ADMIN), tenant, "   ")
    assert admin.get(OPERATOR, tenant).name == "Acme Robotics"
    assert admin.get(OPERATOR, other_tenant).name != "Mine now"
