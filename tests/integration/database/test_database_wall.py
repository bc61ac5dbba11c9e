"""The database wall holds under misuse (issue 10, item 6): the application logs in as the
non-owner, NOBYPASSRLS role `indorch_app` itself, so no statement sent through its engine (`RESET
ROLE`, `SET ROLE`, `SET SESSION AUTHORIZATION`, switching row security off, altering a table) can
widen what it sees; and `tenants` is guarded by row-level security too, so a tenant-scoped
transaction can neither read another tenant's row nor change its quotas, nor create a tenant.
All through the app's own `Database` on PostgreSQL, as raw SQL inside a tenant's scope."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from domain.errors import InvalidSetting
from domain.tenant import Tenant
from resources.database import Database, tenant_scope, unit_of_work
from tests.integration.database.support import APP_ROLE, Seed, new_tenant, seed_tenant


@pytest.fixture(scope="module")
def seeded(pg_database: Database) -> tuple[Seed, Seed]:
    return (
        seed_tenant(pg_database, new_tenant(pg_database, "a")),
        seed_tenant(pg_database, new_tenant(pg_database, "b")),
    )


def _scalar(database: Database, tenant: str | None, *statements: str) -> object:
    """Run `statements` in one transaction (as `tenant`); the last one's scalar."""
    if tenant is None:
        with unit_of_work(database) as uow:
            return [uow.session.execute(text(s)) for s in statements][-1].scalar()
    with tenant_scope(tenant), unit_of_work(database) as uow:
        return [uow.session.execute(text(s)) for s in statements][-1].scalar()


def test_the_app_logs_in_as_a_role_that_owns_nothing_and_cannot_bypass_rls(
    pg_database: Database,
) -> None:
    with unit_of_work(pg_database) as uow:
        row = uow.session.execute(
            text(
                "SELECT session_user, current_user, r.rolsuper, r.rolbypassrls, r.rolcreaterole, "
                "(SELECT count(*) FROM pg_tables WHERE tableowner = session_user), "
                "(SELECT count(*) FROM pg_auth_members m WHERE m.member = r.oid) "
                "FROM pg_roles r WHERE r.rolname = session_user"
            )
        ).one()
    assert tuple(row) == (APP_ROLE, APP_ROLE, False, False, False, 0, 0)


def test_reset_role_inside_a_tenant_scope_does_not_widen_what_it_sees(
    pg_database: Database, seeded: tuple[Seed, Seed]
) -> None:
    a, b = seeded
    seen = _scalar(
        pg_database,
        a.tenant,
        "RESET ROLE",
        f"SELECT count(*) FROM sessions WHERE tenant_id = '{b.tenant}'",
    )
    assert seen == 0
    tenants = _scalar(
        pg_database,
        a.tenant,
        "RESET ROLE",
        "SELECT string_agg(DISTINCT tenant_id, ',') FROM sessions",
    )
    assert tenants == a.tenant
    assert _scalar(pg_database, a.tenant, "RESET ROLE", "SELECT current_user") == APP_ROLE


@pytest.mark.parametrize(
    "statement",
    [
        "SET ROLE postgres",
        "SET SESSION AUTHORIZATION postgres",
        "SET ROLE indorch_tenant_finder",
        "ALTER TABLE sessions DISABLE ROW LEVEL SECURITY",
        "ALTER TABLE sessions NO FORCE ROW LEVEL SECURITY",
        "DROP POLICY tenant_isolation ON sessions",
        "CREATE TABLE stolen (x int)",
    ],
)
def test_statements_that_would_widen_it_are_refused(
    pg_database: Database, seeded: tuple[Seed, Seed], statement: str
) -> None:
    a, _ = seeded
    with pytest.raises(DBAPIError, match=r"permission denied|must be owner"):
        _scalar(pg_database, a.tenant, statement)


def test_row_security_off_fails_rather_than_showing_other_tenants(
    pg_database: Database, seeded: tuple[Seed, Seed]
) -> None:
    a, _ = seeded
    with pytest.raises(DBAPIError, match="row-level security"):
        _scalar(
            pg_database, a.tenant, "SET LOCAL row_security = off", "SELECT count(*) FROM sessions"
        )


def test_a_tenant_scope_cannot_read_or_change_another_tenants_row_or_create_one(
    pg_database: Database, seeded: tuple[Seed, Seed]
) -> None:
    a, b = seeded
    assert _scalar(pg_database, a.tenant, "SELECT string_agg(slug, ',') FROM tenants") == a.tenant
    changed = _scalar(
        pg_database,
        a.tenant,
        "RESET ROLE",
        f"WITH t AS (UPDATE tenants SET max_concurrent_sessions = 9999, "
        f"monthly_token_budget = 0 WHERE slug = '{b.tenant}' RETURNING 1) SELECT count(*) FROM t",
    )
    assert changed == 0
    with unit_of_work(pg_database) as uow:
        theirs = uow.tenants.get(b.tenant)
    assert (theirs.max_concurrent_sessions, theirs.monthly_token_budget) == (
        Tenant(slug="x", name="x").max_concurrent_sessions,
        Tenant(slug="x", name="x").monthly_token_budget,
    )
    with pytest.raises(DBAPIError, match="row-level security"):
        _scalar(
            pg_database,
            a.tenant,
            "INSERT INTO tenants (slug, name, active, max_concurrent_sessions, "
            "monthly_token_budget, created_at) VALUES ('planted', 'p', true, 1, 1, now()) "
            "RETURNING 1",
        )


def test_the_operator_outside_any_tenant_still_manages_tenants(
    pg_database: Database, seeded: tuple[Seed, Seed]
) -> None:
    _, b = seeded
    with unit_of_work(pg_database) as uow:
        tenant = uow.tenants.get(b.tenant)
        tenant.max_concurrent_sessions = 3
        uow.tenants.update(tenant)
    with unit_of_work(pg_database) as uow:
        assert uow.tenants.get(b.tenant).max_concurrent_sessions == 3
        assert b.tenant in {t.slug for t in uow.tenants.list()}


def test_an_app_role_that_could_bypass_rls_is_refused(migrated_postgres_url: str) -> None:
    """Misconfigured to log in as a superuser, the engine refuses to work rather than run
    without the wall."""
    database = Database(migrated_postgres_url, app_role="postgres")
    try:
        with pytest.raises(InvalidSetting, match="bypass"), unit_of_work(database) as uow:
            uow.session.execute(text("SELECT 1"))
    finally:
        database.dispose()
