"""Fixtures for the persistence tests: migrated databases per backend, `Database`s, seeded tenants.

- ``migrated_postgres_url`` / ``migrated_sqlite_url``: one database per test module at head (the
  PostgreSQL one a copy of the run's database the real migrations brought there, see
  ``tests/conftest.py``; ``fresh_postgres_url`` is for tests that need a pristine one).
- ``database``: a ``Database`` on each backend in turn (parametrized sqlite / postgresql).
- ``pg_database`` / ``pg_admin_engine``: PostgreSQL only; the admin engine connects as the
  server's superuser (no ``SET ROLE``), which row-level security does not filter.
- ``tenant``: a new, empty tenant (unique slugs: the tests of a module share its database);
  ``support.seed_tenant`` gives one a record of every kind.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import NullPool

from resources.database import Database
from resources.database.migrate import upgrade
from tests.conftest import DatabaseDropper
from tests.integration.database.support import BACKENDS, new_tenant

# --- databases --------------------------------------------------------------------------------


def _module_database_name(module_name: str) -> str:
    """indorch_m_<test module>_<random>, lowercase and within PostgreSQL's 63 characters."""
    slug = re.sub(r"[^a-z0-9]+", "_", module_name.rsplit(".", 1)[-1].lower()).strip("_")
    return f"indorch_m_{slug[:40].rstrip('_')}_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def migrated_postgres_url(
    postgres_url: str,
    migrated_postgres_template: str,
    database_dropper: DatabaseDropper,
    request: pytest.FixtureRequest,
) -> Iterator[str]:
    """A new database on the test server for this module, at head (a copy of the run's migrated
    template); dropped afterwards."""
    server_url = make_url(postgres_url)
    name = _module_database_name(request.module.__name__)
    admin = create_engine(server_url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(
                text(f'CREATE DATABASE "{name}" TEMPLATE "{migrated_postgres_template}"')
            )
    finally:
        admin.dispose()
    try:
        yield server_url.set(database=name).render_as_string(hide_password=False)
    finally:
        database_dropper.drop(name)


@pytest.fixture(scope="module")
def migrated_sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite file for this module, migrated to head."""
    path: Path = tmp_path_factory.mktemp("sqlite") / "indorch.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    return url


@pytest.fixture(scope="module", params=BACKENDS)
def database(request: pytest.FixtureRequest) -> Iterator[Database]:
    """The application `Database` on a migrated SQLite file, then on a migrated PostgreSQL."""
    fixture = "migrated_postgres_url" if request.param == "postgresql" else "migrated_sqlite_url"
    url = request.getfixturevalue(fixture)
    db = Database(url)
    try:
        yield db
    finally:
        db.dispose()


@pytest.fixture(scope="module")
def pg_database(migrated_postgres_url: str) -> Iterator[Database]:
    db = Database(migrated_postgres_url)
    try:
        yield db
    finally:
        db.dispose()


@pytest.fixture(scope="module")
def pg_admin_engine(migrated_postgres_url: str) -> Iterator[Engine]:
    """Superuser connections to the module's PostgreSQL database (bypass RLS; for checks only).

    No pool, so a role or setting changed on a connection can never leak into another test.
    """
    engine = create_engine(migrated_postgres_url, poolclass=NullPool)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def tenant(database: Database) -> str:
    """A new, empty tenant on the current backend."""
    return new_tenant(database)
