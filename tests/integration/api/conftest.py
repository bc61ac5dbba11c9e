"""The API on a migrated database per test (SQLite, then PostgreSQL under row-level security),
served in-process by Starlette's TestClient, with two tenants and a key of every role in each.

`tenant_a.headers(Role.MEMBER)` gives the headers a MEMBER of tenant A sends.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.services import Services
from domain.caller import Caller
from domain.tenant import Role, Tenant
from resources.database import Database
from services.factory import ServiceFactory
from tests.conftest import migrated_url

OPERATOR = Caller.operator()


@dataclass
class ApiTenant:
    slug: str
    keys: dict[Role, str] = field(default_factory=dict)

    def headers(self, role: Role = Role.ADMIN) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}", "X-Tenant-ID": self.slug}


@pytest.fixture(params=["sqlite", "postgres"])
def wiring(request: pytest.FixtureRequest) -> Iterator[Services]:
    url = migrated_url(request)
    database = Database(url)
    yield Services(database, ServiceFactory(database))
    database.dispose()


@pytest.fixture
def client(wiring: Services) -> Iterator[TestClient]:
    with TestClient(create_app(wiring)) as test_client:
        yield test_client


def _new_tenant(factory: ServiceFactory) -> ApiTenant:
    slug = f"t-{uuid.uuid4().hex[:10]}"
    factory.tenants().create(OPERATOR, Tenant(slug=slug, name=slug))
    tenant = ApiTenant(slug)
    for role in Role:
        _, plaintext = factory.api_keys().create(
            OPERATOR, slug, f"{role.value.lower()}-key", role=role
        )
        tenant.keys[role] = plaintext
    return tenant


@pytest.fixture
def tenant_a(wiring: Services) -> ApiTenant:
    return _new_tenant(wiring.factory)


@pytest.fixture
def tenant_b(wiring: Services) -> ApiTenant:
    return _new_tenant(wiring.factory)


@pytest.fixture
def secret_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """The platform's key for sealing tenant secrets (none written to the state directory)."""
    from cryptography.fernet import Fernet

    from resources.secret_box import SECRET_KEY_VAR

    key = Fernet.generate_key().decode()
    monkeypatch.setenv(SECRET_KEY_VAR, key)
    return key
