"""A SQLite database at the current schema with one tenant, for the repository tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from domain.tenant import Tenant
from resources.database import Database, unit_of_work
from resources.database.migrate import upgrade

TENANT = "acme"


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    url = f"sqlite:///{tmp_path / 'indorch.db'}"
    upgrade(url)
    database = Database(url)
    with unit_of_work(database) as uow:
        uow.tenants.add(Tenant(slug=TENANT, name="Acme"))
        uow.tenants.add(Tenant(slug="globex", name="Globex"))
    try:
        yield database
    finally:
        database.dispose()
