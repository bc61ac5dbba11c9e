"""A SQLite database at the current schema with one tenant, for the repository tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from domain.tenant import Tenant
from resources.database import Database, unit_of_work

TENANT = "acme"


@pytest.fixture
def database(migrated_sqlite_url: str) -> Iterator[Database]:
    database = Database(migrated_sqlite_url)
    with unit_of_work(database) as uow:
        uow.tenants.add(Tenant(slug=TENANT, name="Acme"))
        uow.tenants.add(Tenant(slug="globex", name="Globex"))
    try:
        yield database
    finally:
        database.dispose()
