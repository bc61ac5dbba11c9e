"""Tenant secrets: written by the tenant's ADMIN, names listed from LEAD up, values never shown.

Adversarial: another tenant (even its ADMIN) cannot read, overwrite or delete a tenant's secret;
the database column holds no clear text; the value appears in no log line (SQL logging on) and
no error; only the platform opens one, for an operation, and only with the right key.
"""

from __future__ import annotations

import logging

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text

from domain.caller import Caller
from domain.errors import (
    InvalidInput,
    NotFound,
    PermissionDenied,
    SecretUnreadable,
    TenantMismatch,
)
from domain.tenant import Role
from resources.database import tenant_scope, unit_of_work
from resources.secret_box import SecretBox
from services.factory import ServiceFactory
from services.tenant_secrets import TenantSecrets
from tests.integration.admin.conftest import OPERATOR

VALUE = "ghp_token-Az9-never-shown"


@pytest.fixture
def box() -> SecretBox:
    return SecretBox([Fernet.generate_key().decode()])


@pytest.fixture
def secrets(services: ServiceFactory, box: SecretBox) -> TenantSecrets:
    return TenantSecrets(services.database, box)


def test_an_admin_sets_a_secret_a_lead_lists_its_name_and_the_platform_opens_it(
    secrets: TenantSecrets, tenant: str
) -> None:
    admin = Caller.for_tenant(tenant, Role.ADMIN)
    record = secrets.set(admin, tenant, "github-token", VALUE)
    assert VALUE not in repr(record) and VALUE not in record.model_dump_json()

    listed = secrets.list(Caller.for_tenant(tenant, Role.LEAD), tenant)
    assert [s.name for s in listed] == ["github-token"]
    assert all(VALUE not in s.model_dump_json() for s in listed)
    assert secrets.reveal_for_operation(OPERATOR, tenant, "github-token") == VALUE

    secrets.set(admin, tenant, "github-token", "rotated")
    assert secrets.reveal_for_operation(OPERATOR, tenant, "github-token") == "rotated"
    secrets.delete(admin, tenant, "github-token")
    assert secrets.list(admin, tenant) == []
    with pytest.raises(NotFound):
        secrets.reveal_for_operation(OPERATOR, tenant, "github-token")


@pytest.mark.parametrize("role", [Role.ADMIN, Role.LEAD, Role.MEMBER, Role.VIEWER])
def test_no_tenant_caller_can_read_a_value_back(
    secrets: TenantSecrets, tenant: str, role: Role
) -> None:
    secrets.set(OPERATOR, tenant, "token", VALUE)
    with pytest.raises(PermissionDenied):
        secrets.reveal_for_operation(Caller.for_tenant(tenant, role), tenant, "token")


@pytest.mark.parametrize("role", [Role.LEAD, Role.MEMBER, Role.VIEWER])
def test_below_admin_cannot_set_or_delete_and_nothing_changes(
    secrets: TenantSecrets, tenant: str, role: Role
) -> None:
    secrets.set(OPERATOR, tenant, "token", VALUE)
    caller = Caller.for_tenant(tenant, role)
    with pytest.raises(PermissionDenied):
        secrets.set(caller, tenant, "token", "planted")
    with pytest.raises(PermissionDenied):
        secrets.delete(caller, tenant, "token")
    assert secrets.reveal_for_operation(OPERATOR, tenant, "token") == VALUE


@pytest.mark.parametrize("role", [Role.MEMBER, Role.VIEWER])
def test_below_lead_cannot_even_list_names(secrets: TenantSecrets, tenant: str, role: Role) -> None:
    with pytest.raises(PermissionDenied):
        secrets.list(Caller.for_tenant(tenant, role), tenant)


def test_another_tenant_cannot_read_overwrite_or_delete_a_secret(
    secrets: TenantSecrets, tenant: str, other_tenant: str
) -> None:
    secrets.set(OPERATOR, tenant, "token", VALUE)
    intruder = Caller.for_tenant(other_tenant, Role.ADMIN)
    for attempt in (
        lambda: secrets.set(intruder, tenant, "token", "planted"),
        lambda: secrets.delete(intruder, tenant, "token"),
        lambda: secrets.list(intruder, tenant),
    ):
        with pytest.raises(TenantMismatch):
            attempt()
    # The same name in its own tenant is its own secret, not a window onto the other's.
    secrets.set(intruder, other_tenant, "token", "theirs")
    with pytest.raises(NotFound):
        secrets.reveal_for_operation(OPERATOR, other_tenant, "missing")
    assert secrets.reveal_for_operation(OPERATOR, other_tenant, "token") == "theirs"
    assert secrets.reveal_for_operation(OPERATOR, tenant, "token") == VALUE
    with tenant_scope(other_tenant), unit_of_work(secrets._database) as uow:
        assert [s.name for s in uow.secrets.list()] == ["token"]
        assert uow.secrets.sealed("token") != ""


def test_the_column_holds_no_clear_text_and_another_key_cannot_open_it(
    services: ServiceFactory, secrets: TenantSecrets, tenant: str
) -> None:
    secrets.set(OPERATOR, tenant, "token", VALUE)
    with tenant_scope(tenant), unit_of_work(services.database) as uow:
        stored = uow.session.execute(
            text("SELECT sealed FROM tenant_secrets WHERE tenant_id = :t"), {"t": tenant}
        ).scalar_one()
    assert VALUE not in stored and VALUE.encode().hex() not in stored

    stranger = TenantSecrets(services.database, SecretBox([Fernet.generate_key().decode()]))
    with pytest.raises(SecretUnreadable) as unreadable:
        stranger.reveal_for_operation(OPERATOR, tenant, "token")
    assert "token" in str(unreadable.value) and VALUE not in str(unreadable.value)


def test_no_log_line_carries_the_value(
    secrets: TenantSecrets, tenant: str, caplog: pytest.LogCaptureFixture
) -> None:
    engine_logger = logging.getLogger("sqlalchemy.engine")
    previous = engine_logger.level
    engine_logger.setLevel(logging.INFO)  # every statement and its parameters
    try:
        with caplog.at_level(logging.DEBUG):
            secrets.set(OPERATOR, tenant, "token", VALUE)
            secrets.list(OPERATOR, tenant)
            assert secrets.reveal_for_operation(OPERATOR, tenant, "token") == VALUE
            secrets.delete(OPERATOR, tenant, "token")
    finally:
        engine_logger.setLevel(previous)
    assert "tenant_secrets" in caplog.text  # the statements were logged ...
    assert VALUE not in caplog.text  # ... and the value in none of them


@pytest.mark.parametrize(
    ("name", "value", "field"),
    [("bad name", VALUE, "name"), ("", VALUE, "name"), ("ok", "   ", "secret")],
)
def test_a_bad_name_or_an_empty_value_is_refused_without_echoing_the_value(
    secrets: TenantSecrets, tenant: str, name: str, value: str, field: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        secrets.set(OPERATOR, tenant, name, value)
    assert refused.value.field == field and VALUE not in str(refused.value)
    assert secrets.list(OPERATOR, tenant) == []
