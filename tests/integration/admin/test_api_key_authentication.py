"""Keys mean what they say: a key acts with its role capped at its user's (then and later), and
stops authenticating when its tenant or user is deleted, suspended or deactivated, or it is
revoked. The caller a key authenticates as is what the services check roles against."""

from __future__ import annotations

import pytest

from domain.caller import Caller
from domain.errors import InvalidInput, KeyRefused, PermissionDenied, TenantMismatch
from domain.tenant import Role, User
from services.factory import ServiceFactory
from tests.integration.admin.conftest import OPERATOR


def _user(services: ServiceFactory, tenant: str, email: str, role: Role) -> User:
    return services.users().create(OPERATOR, User(tenant_id=tenant, email=email, role=role))


def test_a_key_authenticates_as_its_tenant_user_and_role(
    services: ServiceFactory, tenant: str
) -> None:
    user = _user(services, tenant, "lead@x.io", Role.LEAD)
    _, plaintext = services.api_keys().create(
        OPERATOR, tenant, "ci", role=Role.MEMBER, user_email=user.email
    )
    caller = services.authentication().authenticate(tenant, plaintext)
    assert caller == Caller.for_tenant(tenant, Role.MEMBER, user_id=user.id)
    assert not caller.is_operator


def test_a_key_above_its_users_role_is_refused_and_nothing_is_written(
    services: ServiceFactory, tenant: str
) -> None:
    viewer = _user(services, tenant, "viewer@x.io", Role.VIEWER)
    with pytest.raises(InvalidInput, match="above the role VIEWER of its user"):
        services.api_keys().create(
            OPERATOR, tenant, "escalate", role=Role.ADMIN, user_email=viewer.email
        )
    assert services.api_keys().list(OPERATOR, tenant) == []


def test_a_viewers_key_cannot_act_as_admin(services: ServiceFactory, tenant: str) -> None:
    viewer = _user(services, tenant, "viewer@x.io", Role.VIEWER)
    _, plaintext = services.api_keys().create(
        OPERATOR, tenant, "read-only", role=Role.VIEWER, user_email=viewer.email
    )
    caller = services.authentication().authenticate(tenant, plaintext)
    with pytest.raises(PermissionDenied):
        services.api_keys().create(caller, tenant, "escalate", role=Role.ADMIN)
    with pytest.raises(PermissionDenied):
        services.users().create(caller, User(tenant_id=tenant, email="eve@x.io", role=Role.ADMIN))
    with pytest.raises(PermissionDenied):
        services.users().set_role(caller, tenant, viewer.email, Role.ADMIN)
    assert [k.name for k in services.api_keys().list(caller, tenant)] == ["read-only"]
    assert [u.email for u in services.users().list(caller, tenant)] == [viewer.email]


def test_a_demoted_users_key_acts_with_the_users_new_role(
    services: ServiceFactory, tenant: str
) -> None:
    admin = _user(services, tenant, "admin@x.io", Role.ADMIN)
    _, plaintext = services.api_keys().create(
        OPERATOR, tenant, "ops", role=Role.ADMIN, user_email=admin.email
    )
    services.users().set_role(OPERATOR, tenant, admin.email, Role.VIEWER)

    caller = services.authentication().authenticate(tenant, plaintext)

    assert caller.role is Role.VIEWER
    with pytest.raises(PermissionDenied):
        services.api_keys().create(caller, tenant, "escalate", role=Role.VIEWER)


def test_a_suspended_users_key_is_refused_until_the_user_is_reactivated(
    services: ServiceFactory, tenant: str
) -> None:
    user = _user(services, tenant, "ann@x.io", Role.ADMIN)
    _, plaintext = services.api_keys().create(
        OPERATOR, tenant, "ci", role=Role.ADMIN, user_email=user.email
    )
    services.users().suspend(OPERATOR, tenant, user.email)
    with pytest.raises(KeyRefused):
        services.authentication().authenticate(tenant, plaintext)
    services.users().reactivate(OPERATOR, tenant, user.email)
    assert services.authentication().authenticate(tenant, plaintext).role is Role.ADMIN


@pytest.mark.parametrize("ending", ["delete", "deactivate"])
def test_a_deleted_or_deactivated_tenants_key_is_refused(
    services: ServiceFactory, tenant: str, ending: str
) -> None:
    _, plaintext = services.api_keys().create(OPERATOR, tenant, "ci", role=Role.ADMIN)
    assert services.authentication().authenticate(tenant, plaintext).role is Role.ADMIN
    getattr(services.tenants(), ending)(OPERATOR, tenant)
    with pytest.raises(KeyRefused) as refused:
        services.authentication().authenticate(tenant, plaintext)
    assert plaintext not in str(refused.value)


def test_a_revoked_key_a_wrong_key_and_another_tenants_key_are_refused(
    services: ServiceFactory, tenant: str, other_tenant: str
) -> None:
    key, plaintext = services.api_keys().create(OPERATOR, tenant, "ci", role=Role.ADMIN)
    with pytest.raises(KeyRefused):
        services.authentication().authenticate(other_tenant, plaintext)
    with pytest.raises(KeyRefused):
        services.authentication().authenticate(tenant, plaintext + "x")
    with pytest.raises(KeyRefused):
        services.authentication().authenticate("no-such-tenant", plaintext)
    services.api_keys().revoke(OPERATOR, tenant, key.id)
    with pytest.raises(KeyRefused):
        services.authentication().authenticate(tenant, plaintext)


@pytest.mark.parametrize("role", [Role.LEAD, Role.MEMBER, Role.VIEWER])
def test_only_an_admin_changes_roles_or_suspends_and_nothing_changes(
    services: ServiceFactory, tenant: str, role: Role
) -> None:
    target = _user(services, tenant, "target@x.io", Role.MEMBER)
    caller = Caller.for_tenant(tenant, role)
    with pytest.raises(PermissionDenied):
        services.users().set_role(caller, tenant, target.email, Role.ADMIN)
    with pytest.raises(PermissionDenied):
        services.users().suspend(caller, tenant, target.email)
    [listed] = services.users().list(OPERATOR, tenant)
    assert (listed.role, listed.active) == (Role.MEMBER, True)


def test_another_tenants_admin_cannot_change_a_tenants_users(
    services: ServiceFactory, tenant: str, other_tenant: str
) -> None:
    target = _user(services, tenant, "target@x.io", Role.MEMBER)
    intruder = Caller.for_tenant(other_tenant, Role.ADMIN)
    with pytest.raises(TenantMismatch):
        services.users().set_role(intruder, tenant, target.email, Role.ADMIN)
    with pytest.raises(TenantMismatch):
        services.users().suspend(intruder, tenant, target.email)
    [listed] = services.users().list(OPERATOR, tenant)
    assert (listed.role, listed.active) == (Role.MEMBER, True)
