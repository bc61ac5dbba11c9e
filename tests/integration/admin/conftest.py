"""A migrated application database per test, on SQLite and on PostgreSQL (row-level security)
in turn, with the services built as every caller builds them, and two tenants to keep apart."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from domain.caller import Caller
from domain.tenant import Tenant
from resources.database import Database
from services.factory import ServiceFactory
from tests.conftest import migrated_url

OPERATOR = Caller.operator()


@pytest.fixture(params=["sqlite", "postgres"])
def services(request: pytest.FixtureRequest) -> Iterator[ServiceFactory]:
    url = migrated_url(request)
    database = Database(url)
    yield ServiceFactory(database)
    database.dispose()


def _new_tenant(services: ServiceFactory) -> str:
    slug = f"t-{uuid.uuid4().hex[:10]}"
    services.tenants().create(OPERATOR, Tenant(slug=slug, name=slug))
    return slug


@pytest.fixture
def tenant(services: ServiceFactory) -> str:
    return _new_tenant(services)


@pytest.fixture
def other_tenant(services: ServiceFactory) -> str:
    return _new_tenant(services)
