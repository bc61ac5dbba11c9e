"""PostgreSQL row-level security: the second wall behind the repositories' own tenant filter.

Checks the catalog after the real migration (RLS enabled and forced on every tenant table, a
policy on each, an application role without BYPASSRLS), then shows with raw SQL as that role that
without `app.tenant_id` nothing is visible, with it only that tenant's rows are, a row of another
tenant cannot be written, and the event tables are append-only (session events may only be
deleted once expired: test_history_retention.py). Finally, that `Database` really
sets the tenant per transaction (and clears it for the next one on a reused connection).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from sqlalchemy import Connection, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session as OrmSession

from resources.database import Database, tenant_scope, unit_of_work
from resources.database.schema import TENANT_TABLES
from tests.integration.database.support import (
    APP_ROLE,
    SESSIONS_PER_SEED,
    Seed,
    new_tenant,
    seed_tenant,
)

APPEND_ONLY_TABLES = ("session_events", "status_events")
FINDER_ROLE = "indorch_tenant_finder"  # see migration 0006
# The finder role's policies: sessions and fine-tuning jobs (0006, 0009), runtimes (0012),
# webhook deliveries (0018), agents (0019).
FINDER_POLICIES = frozenset(
    {
        "tenant_finder_reads",
        "tenant_finder_reads_agents",
        "tenant_finder_reads_runtimes",
        "tenant_finder_reads_webhook_deliveries",
    }
)
EXPIRY_POLICY = "session_history_expiry"  # migration 0013


@pytest.fixture(scope="module")
def seeded(pg_database: Database) -> tuple[Seed, Seed]:
    """Tenants A and B with a row in every tenant table, written through the repositories."""
    return (
        seed_tenant(pg_database, new_tenant(pg_database, "a")),
        seed_tenant(pg_database, new_tenant(pg_database, "b")),
    )


@contextmanager
def as_app_role(admin: Engine, tenant: str | None = None) -> Iterator[Connection]:
    """A raw connection acting as the application role in one transaction, rolled back after.

    With `tenant`, `app.tenant_id` is set for the transaction exactly like `Database` does.
    """
    with admin.connect() as connection, connection.begin() as transaction:
        connection.execute(text(f"SET LOCAL ROLE {APP_ROLE}"))
        if tenant is not None:
            connection.execute(
                text("SELECT set_config('app.tenant_id', :tenant, true)"), {"tenant": tenant}
            )
        yield connection
        transaction.rollback()


def _count(connection: Connection, table: str, where: str = "", **params: str) -> int:
    sql = f"SELECT count(*) FROM {table}" + (f" WHERE {where}" if where else "")
    return int(connection.execute(text(sql), params).scalar_one())


def _counts_by_superuser(admin: Engine, tenant: str) -> dict[str, int]:
    with admin.connect() as connection:
        return {t: _count(connection, t, "tenant_id = :t", t=tenant) for t in TENANT_TABLES}


# --- the catalog ------------------------------------------------------------------------------


def test_every_tenant_table_has_forced_row_level_security_and_a_policy(
    pg_admin_engine: Engine,
) -> None:
    with pg_admin_engine.connect() as connection:
        flags = {
            name: (enabled, forced)
            for name, enabled, forced in connection.execute(
                text(
                    "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class "
                    "WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'"
                )
            )
        }
        policies: dict[str, list[tuple[str, str, str]]] = {}
        readers: list[tuple[str, str, str, list[str], str]] = []
        expiry: list[tuple[str, str, str]] = []
        for name, table, command, roles, using, check, permissive in connection.execute(
            text(
                "SELECT policyname, tablename, cmd, roles, qual, with_check, permissive "
                "FROM pg_policies "
                "WHERE schemaname = 'public'"
            )
        ):
            if name in FINDER_POLICIES:
                readers.append((table, command, using, list(roles), check))
            elif name == EXPIRY_POLICY:
                expiry.append((table, command, permissive))
            else:
                policies.setdefault(table, []).append((command, using, check))

    assert set(TENANT_TABLES) <= set(flags)
    assert {t: flags[t] for t in TENANT_TABLES} == {t: (True, True) for t in TENANT_TABLES}
    for table in TENANT_TABLES:
        assert policies.get(table), f"{table} has no policy"
        for command, using, check in policies[table]:
            assert command == "ALL"
            assert "app.tenant_id" in using and "tenant_id" in using, table
            assert "app.tenant_id" in check and "tenant_id" in check, table
    # Deleting session events is narrowed further (restrictive: ANDed with the tenant policy;
    # migration 0013, tested by test_history_retention.py).
    assert expiry == [("session_events", "DELETE", "RESTRICTIVE")]
    # The one exception: the role that owns the tenant finder functions reads agents, sessions,
    # fine-tuning jobs, runtimes and webhook deliveries (only; migrations 0006, 0009, 0012, 0018
    # and 0019; a few columns of each, see test_tenants_with_work.py).
    assert sorted(readers) == [
        ("agents", "SELECT", "true", [FINDER_ROLE], None),
        ("fine_tuning_jobs", "SELECT", "true", [FINDER_ROLE], None),
        ("runtimes", "SELECT", "true", [FINDER_ROLE], None),
        ("sessions", "SELECT", "true", [FINDER_ROLE], None),
        ("webhook_deliveries", "SELECT", "true", [FINDER_ROLE], None),
    ]


def test_the_application_role_cannot_bypass_row_level_security(pg_admin_engine: Engine) -> None:
    with pg_admin_engine.connect() as connection:
        row = connection.execute(
            text("SELECT rolsuper, rolbypassrls, rolcanlogin FROM pg_roles WHERE rolname = :role"),
            {"role": APP_ROLE},
        ).one()
    assert (row.rolsuper, row.rolbypassrls) == (False, False)


def test_the_application_connects_as_the_application_role(pg_database: Database) -> None:
    with unit_of_work(pg_database) as uow:
        assert uow.session.execute(text("SELECT current_user")).scalar_one() == APP_ROLE


# --- raw SQL as the application role ----------------------------------------------------------


def test_without_a_tenant_setting_raw_sql_sees_no_rows(
    pg_admin_engine: Engine, seeded: tuple[Seed, Seed]
) -> None:
    a, b = seeded
    for tenant in (a.tenant, b.tenant):
        assert all(_counts_by_superuser(pg_admin_engine, tenant).values()), tenant
    with as_app_role(pg_admin_engine) as connection:
        assert {t: _count(connection, t) for t in TENANT_TABLES} == dict.fromkeys(TENANT_TABLES, 0)


def test_with_a_tenant_setting_raw_sql_sees_only_that_tenant(
    pg_admin_engine: Engine, seeded: tuple[Seed, Seed]
) -> None:
    a, _ = seeded
    expected = _counts_by_superuser(pg_admin_engine, a.tenant)
    with as_app_role(pg_admin_engine, a.tenant) as connection:
        assert {t: _count(connection, t) for t in TENANT_TABLES} == expected
        assert {t: _count(connection, t, "tenant_id <> :t", t=a.tenant) for t in TENANT_TABLES} == (
            dict.fromkeys(TENANT_TABLES, 0)
        )


def _statement_fails(admin: Engine, scope: str | None, sql: str, **params: object) -> str:
    """Run `sql` as the application role scoped to `scope`; return the database's error."""
    with pytest.raises(DBAPIError) as raised, as_app_role(admin, scope) as connection:
        connection.execute(text(sql), params)
    return str(raised.value.orig)


NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("setting", ["other tenant", "no tenant"])
def test_a_row_of_another_tenant_cannot_be_inserted(
    pg_admin_engine: Engine, seeded: tuple[Seed, Seed], setting: str
) -> None:
    a, b = seeded
    scoped = a.tenant if setting == "other tenant" else None
    message = _statement_fails(
        pg_admin_engine,
        scoped,
        "INSERT INTO users (id, tenant_id, email, name, role, active, created_at) "
        "VALUES ('USR-RLS-1', :tenant, 'x@example.com', '', 'MEMBER', true, :now)",
        tenant=b.tenant,
        now=NOW,
    )
    assert "row-level security" in message
    message = _statement_fails(
        pg_admin_engine,
        scoped,
        "INSERT INTO usage (tenant_id, day, sessions, tokens_in, tokens_out, cost_usd) "
        "VALUES (:tenant, '2026-01-02', 1, 1, 1, 0)",
        tenant=b.tenant,
    )
    assert "row-level security" in message
    message = _statement_fails(
        pg_admin_engine,
        scoped,
        "INSERT INTO session_events "
        "(tenant_id, session_id, seq, event_type, reason, data, created_at) "
        "VALUES (:tenant, :session, 99, 'forged', '', '{}', :now)",
        tenant=b.tenant,
        session=b.session.id,
        now=NOW,
    )
    assert "row-level security" in message


def test_a_row_cannot_be_handed_to_another_tenant(
    pg_admin_engine: Engine, seeded: tuple[Seed, Seed]
) -> None:
    a, b = seeded
    message = _statement_fails(
        pg_admin_engine,
        a.tenant,
        "UPDATE sessions SET tenant_id = :other WHERE id = :id",
        other=b.tenant,
        id=a.session.id,
    )
    assert "row-level security" in message


def test_rows_of_another_tenant_cannot_be_updated_or_deleted(
    pg_admin_engine: Engine, seeded: tuple[Seed, Seed]
) -> None:
    a, b = seeded
    with as_app_role(pg_admin_engine, a.tenant) as connection:
        updated = connection.execute(
            text("UPDATE sessions SET title = 'hijacked' WHERE tenant_id = :t"), {"t": b.tenant}
        )
        deleted = connection.execute(
            text("DELETE FROM agents WHERE tenant_id = :t"), {"t": b.tenant}
        )
        assert (updated.rowcount, deleted.rowcount) == (0, 0)
        # ... while the same statements do reach A's own rows
        assert (
            connection.execute(
                text("UPDATE sessions SET title = title WHERE tenant_id = :t"), {"t": a.tenant}
            ).rowcount
            == SESSIONS_PER_SEED
        )


@pytest.mark.parametrize(
    ("table", "statement"),
    [
        ("session_events", "UPDATE {table} SET reason = 'rewritten'"),
        ("status_events", "UPDATE {table} SET reason = 'rewritten'"),
        ("status_events", "DELETE FROM {table}"),
    ],
)
def test_event_tables_are_append_only(
    pg_admin_engine: Engine, seeded: tuple[Seed, Seed], table: str, statement: str
) -> None:
    a, _ = seeded
    message = _statement_fails(pg_admin_engine, a.tenant, statement.format(table=table))
    assert "permission denied" in message


# --- the tenant is set per transaction --------------------------------------------------------


def _tenant_setting(session: OrmSession) -> str | None:
    return session.execute(text("SELECT current_setting('app.tenant_id', true)")).scalar_one()


def test_database_sets_the_tenant_for_each_transaction(
    migrated_postgres_url: str, seeded: tuple[Seed, Seed]
) -> None:
    a, b = seeded
    # Transactions run one after another reuse the pool's one connection (checked by its pid),
    # so a tenant left over from an earlier transaction would show.
    db = Database(migrated_postgres_url)
    try:
        with tenant_scope(a.tenant), unit_of_work(db) as uow:
            assert _tenant_setting(uow.session) == a.tenant
            pid = uow.session.execute(text("SELECT pg_backend_pid()")).scalar_one()
            assert uow.session.execute(text("SELECT count(*) FROM sessions")).scalar_one() == (
                SESSIONS_PER_SEED
            )
        with tenant_scope(b.tenant), unit_of_work(db) as uow:
            assert _tenant_setting(uow.session) == b.tenant
            assert uow.session.execute(text("SELECT pg_backend_pid()")).scalar_one() == pid
            visible = uow.session.execute(text("SELECT DISTINCT tenant_id FROM sessions"))
            assert visible.scalars().all() == [b.tenant]
        with unit_of_work(db) as uow:  # no tenant: nothing left over from the last transaction
            assert uow.session.execute(text("SELECT pg_backend_pid()")).scalar_one() == pid
            assert not _tenant_setting(uow.session)
            assert uow.session.execute(text("SELECT count(*) FROM sessions")).scalar_one() == 0
    finally:
        db.dispose()


def test_a_savepoint_keeps_the_transactions_tenant_without_setting_it_again(
    migrated_postgres_url: str, seeded: tuple[Seed, Seed]
) -> None:
    a, b = seeded
    db = Database(migrated_postgres_url)
    settings: list[str] = []

    def note(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        if "set_config('app.tenant_id'" in statement:
            settings.append(statement)

    event.listen(db.engine, "before_cursor_execute", note)
    try:
        with tenant_scope(a.tenant), unit_of_work(db) as uow:
            with uow.session.begin_nested():
                assert _tenant_setting(uow.session) == a.tenant
                tenants = uow.session.execute(text("SELECT DISTINCT tenant_id FROM sessions"))
                assert tenants.scalars().all() == [a.tenant]
            with tenant_scope(b.tenant), uow.session.begin_nested():  # another tenant: set
                assert _tenant_setting(uow.session) == b.tenant
            with uow.session.begin_nested():  # and back, though B's savepoint was released
                assert _tenant_setting(uow.session) == a.tenant
        assert len(settings) == 3
    finally:
        db.dispose()
