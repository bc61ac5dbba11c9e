"""A migrated application database per test, on SQLite and on PostgreSQL in turn."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from resources.database import Database
from tests.conftest import migrated_url


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest) -> Iterator[Database]:
    url = migrated_url(request)
    database = Database(url)
    yield database
    database.dispose()
