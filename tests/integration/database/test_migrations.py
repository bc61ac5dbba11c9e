"""Migrations upgrade a clean PostgreSQL 15 database and a clean SQLite file, downgrade, upgrade.

Each test gets a pristine database (``fresh_postgres_url`` / ``sqlite_url``), never one another
test has touched.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import Engine

from resources.database.migrate import alembic_config, downgrade, upgrade
from resources.database.schema import TENANT_TABLES, Base
from resources.database.schema_version import current_revision, head_revision
from tests.integration.database.support import BACKENDS

EXPECTED_TABLES = frozenset(Base.metadata.tables)
ALEMBIC_TABLE = "alembic_version"


@pytest.fixture(params=BACKENDS)
def clean_url(request: pytest.FixtureRequest) -> str:
    """A brand-new, empty database: a fresh PostgreSQL database or a new SQLite file."""
    fixture = "fresh_postgres_url" if request.param == "postgresql" else "sqlite_url"
    return request.getfixturevalue(fixture)


@pytest.fixture
def inspector_engine(clean_url: str) -> Iterator[Engine]:
    engine = create_engine(clean_url)
    try:
        yield engine
    finally:
        engine.dispose()


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def _rls_flags(engine: Engine) -> dict[str, tuple[bool, bool]]:
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class "
                "WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'"
            )
        )
        return {name: (enabled, forced) for name, enabled, forced in rows}


def test_migrations_form_one_line_ending_at_head() -> None:
    scripts = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert scripts.get_heads() == [head_revision()]
    chain = [script.revision for script in scripts.walk_revisions()]
    assert chain[-1] == "0001" and len(chain) == len(set(chain))


def test_upgrade_downgrade_upgrade_on_a_clean_database(
    clean_url: str, inspector_engine: Engine
) -> None:
    assert _tables(inspector_engine) == set()
    assert current_revision(inspector_engine) is None

    upgrade(clean_url)
    assert _tables(inspector_engine) == EXPECTED_TABLES | {ALEMBIC_TABLE}
    assert current_revision(inspector_engine) == head_revision()

    downgrade(clean_url)
    assert _tables(inspector_engine) <= {ALEMBIC_TABLE}
    assert current_revision(inspector_engine) is None

    upgrade(clean_url)
    assert _tables(inspector_engine) == EXPECTED_TABLES | {ALEMBIC_TABLE}
    assert current_revision(inspector_engine) == head_revision()
    if inspector_engine.dialect.name == "postgresql":
        # The second upgrade finds the role already there and still secures every table.
        flags = _rls_flags(inspector_engine)
        assert {table: flags[table] for table in TENANT_TABLES} == {
            table: (True, True) for table in TENANT_TABLES
        }


def test_upgrade_is_idempotent_at_head(clean_url: str, inspector_engine: Engine) -> None:
    upgrade(clean_url)
    upgrade(clean_url)
    assert current_revision(inspector_engine) == head_revision()
    assert _tables(inspector_engine) == EXPECTED_TABLES | {ALEMBIC_TABLE}


def test_migrated_columns_match_the_models(clean_url: str, inspector_engine: Engine) -> None:
    """The migration and `schema.py` agree column by column (name and nullability)."""
    upgrade(clean_url)
    inspector = inspect(inspector_engine)
    for table in Base.metadata.sorted_tables:
        migrated = {c["name"]: c["nullable"] for c in inspector.get_columns(table.name)}
        modelled = {c.name: c.nullable for c in table.columns}
        assert migrated == modelled, table.name
