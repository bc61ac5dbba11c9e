"""The application role is created and granted safely when two databases migrate at once.

Roles are cluster-wide, so two migrations of two databases on one PostgreSQL server race on the
same role: the second CREATE ROLE waits on the first's uncommitted row, then fails with a
duplicate key unless the migration expects it. The race is staged here with a role name of its
own (the real role already exists on the test server): the first transaction stays open while
the second runs the same statements and is seen waiting on the lock.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from types import ModuleType

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import Engine

from resources.database.migrate import alembic_config

WAIT_FOR_LOCK_SECONDS = 10.0


@pytest.fixture(scope="module")
def initial_migration() -> ModuleType:
    script = ScriptDirectory.from_config(alembic_config("sqlite://")).get_revision("0001")
    assert script is not None
    return script.module


@pytest.fixture
def engine(postgres_url: str) -> Iterator[Engine]:
    engine = create_engine(postgres_url)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def role_name(engine: Engine) -> Iterator[str]:
    name = f"indorch_race_{uuid.uuid4().hex[:8]}"
    try:
        yield name
    finally:
        with engine.connect() as connection:
            connection.execute(text(f"DROP ROLE IF EXISTS {name}"))
            connection.commit()


def _run(connection: Connection, statements: list[str]) -> None:
    for statement in statements:
        connection.execute(text(statement))


def _waiting_on_a_lock(engine: Engine, pid: int) -> bool:
    with engine.connect() as connection:
        return bool(
            connection.execute(
                text("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = :pid"),
                {"pid": pid},
            ).scalar()
        )


@pytest.mark.parametrize("role_exists", [False, True], ids=["new-role", "existing-role"])
def test_two_migrations_creating_the_role_at_once_both_succeed(
    engine: Engine, role_name: str, initial_migration: ModuleType, role_exists: bool
) -> None:
    """Both finish; the role has no login, superuser or RLS bypass; the migrating user is in it."""
    statements = initial_migration.app_role_statements(role_name)
    if role_exists:  # the race is then on the membership alone
        with engine.connect() as connection:
            connection.execute(text(f"CREATE ROLE {role_name} NOLOGIN"))
            connection.commit()
    errors: list[BaseException] = []
    with engine.connect() as first, engine.connect() as second:
        second_pid = second.execute(text("SELECT pg_backend_pid()")).scalar_one()
        second.commit()
        _run(first, statements)  # open: the role row is written, not committed

        def migrate_second() -> None:
            try:
                _run(second, statements)
                second.commit()
            except BaseException as error:  # reported by the assertion below
                errors.append(error)
                second.rollback()

        racer = threading.Thread(target=migrate_second)
        racer.start()
        deadline = time.monotonic() + WAIT_FOR_LOCK_SECONDS
        while not _waiting_on_a_lock(engine, second_pid):
            assert racer.is_alive(), f"the second migration did not wait: {errors}"
            assert time.monotonic() < deadline, "the second migration never waited on the lock"
            time.sleep(0.05)
        first.commit()
        racer.join(WAIT_FOR_LOCK_SECONDS)
        assert not racer.is_alive()
    assert errors == []
    with engine.connect() as connection:
        flags = connection.execute(
            text("SELECT rolcanlogin, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = :r"),
            {"r": role_name},
        ).one()
        member = connection.execute(
            text("SELECT pg_has_role(current_user, :r, 'MEMBER')"), {"r": role_name}
        ).scalar_one()
    assert tuple(flags) == (False, False, False)
    assert member is True
