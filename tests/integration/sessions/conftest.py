"""A migrated application database per test, on SQLite and on PostgreSQL in turn."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from resources.database import Database
from resources.database.migrate import upgrade


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, sqlite_url: str) -> Iterator[Database]:
    url = sqlite_url if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    upgrade(url)
    database = Database(url)
    yield database
    database.dispose()
