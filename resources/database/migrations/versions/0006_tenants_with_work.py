"""Tenants with work: indexes, and on PostgreSQL the one deliberate read across tenants.

The dispatch, retry and settlement sensors visit only the tenants with work (issue: 1,000 idle
tenants cost two transactions each per tick). One query finds them; it must see every tenant's
sessions, which the application role (row-level security, no BYPASSRLS) cannot. So on PostgreSQL:

- the role `indorch_tenant_finder` (NOLOGIN, no BYPASSRLS, nobody can become it but the
  migrating user) may SELECT the columns of sessions and tenants the functions read, every
  tenant's rows through the policy `tenant_finder_reads` (SELECT only, for that role only);
- it owns three SECURITY DEFINER functions, `tenants_to_dispatch(as_of)`, `tenants_to_retry()`
  and `tenants_to_settle()`, that return only tenant slugs; the application role may EXECUTE
  them, PUBLIC may not.

The criteria are those of `resources.database.repositories.tenant_work` (SQLite runs them there);
a change to either is a new migration that replaces the functions.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

APP_ROLE = "indorch_app"  # created by 0001
FINDER_ROLE = "indorch_tenant_finder"
FINDER_POLICY = "tenant_finder_reads"
SESSION_COLUMNS = (
    "id",
    "tenant_id",
    "parent_id",
    "status",
    "next_attempt_at",
    "lease_expires_at",
    "retry_count",
    "max_retries",
)
RETRYABLE = "status IN ('FAILED', 'TIMEOUT', 'ORPHANED') AND retry_count < max_retries"

DISPATCH_QUERY = """
    SELECT w.tenant_id FROM (
        SELECT s.tenant_id FROM sessions s
        WHERE s.status = 'PENDING' AND (s.next_attempt_at IS NULL OR s.next_attempt_at <= as_of)
        UNION
        SELECT s.tenant_id FROM sessions s
        WHERE s.status IN ('QUEUED', 'RUNNING', 'DEGRADED')
          AND (s.lease_expires_at IS NULL OR s.lease_expires_at <= as_of)
    ) w
    WHERE (SELECT t.active AND t.deleted_at IS NULL FROM tenants t WHERE t.slug = w.tenant_id)
    ORDER BY w.tenant_id
"""
RETRY_QUERY = """
    SELECT w.tenant_id FROM (
        SELECT s.tenant_id FROM sessions s
        WHERE s.status IN ('FAILED', 'TIMEOUT', 'ORPHANED') AND s.retry_count < s.max_retries
    ) w
    WHERE (SELECT t.active AND t.deleted_at IS NULL FROM tenants t WHERE t.slug = w.tenant_id)
    ORDER BY w.tenant_id
"""
SETTLE_QUERY = """
    SELECT w.tenant_id FROM (
        SELECT s.tenant_id FROM sessions s WHERE s.status = 'PENDING' AND s.parent_id IS NOT NULL
        UNION
        SELECT s.tenant_id FROM sessions s
        WHERE s.status IN ('PENDING', 'RUNNING') AND EXISTS (
            SELECT 1 FROM sessions c WHERE c.parent_id = s.id
        )
    ) w
    WHERE (SELECT t.active AND t.deleted_at IS NULL FROM tenants t WHERE t.slug = w.tenant_id)
    ORDER BY w.tenant_id
"""
FUNCTIONS = {  # signature: body
    "tenants_to_dispatch(as_of timestamptz)": DISPATCH_QUERY,
    "tenants_to_retry()": RETRY_QUERY,
    "tenants_to_settle()": SETTLE_QUERY,
}


def _function_statements(signature: str, body: str) -> list[str]:
    """A function that runs as the finder role and returns slugs; only the app may call it."""
    types = signature.replace("as_of ", "")
    return [
        f"CREATE OR REPLACE FUNCTION {signature} RETURNS SETOF text LANGUAGE sql STABLE "
        f"SECURITY DEFINER SET search_path = pg_catalog, public AS $fn${body}$fn$",
        f"ALTER FUNCTION {types} OWNER TO {FINDER_ROLE}",
        f"REVOKE ALL ON FUNCTION {types} FROM PUBLIC",
        f"GRANT EXECUTE ON FUNCTION {types} TO {APP_ROLE}",
    ]


def _finder_role_statements() -> list[str]:
    """Create the finder role if missing, as 0001 does the application role (roles are
    cluster-wide: two databases migrating at once race on them), and let the migrating user
    hand it the functions."""
    return [
        f"""
        DO $$
        BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{FINDER_ROLE}') THEN
                CREATE ROLE {FINDER_ROLE} NOLOGIN NOSUPERUSER NOBYPASSRLS;
            END IF;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END
        $$
        """,
        f"""
        DO $$
        BEGIN
            GRANT {FINDER_ROLE} TO CURRENT_USER;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END
        $$
        """,
    ]


def upgrade() -> None:
    # Due PENDING sessions by status (then tenant, read from the index alone); expired leases
    # use ix_sessions_status_lease (0002). Sessions with a retry left are few, unlike FAILED
    # ones: a partial index holds only those.
    op.create_index(
        "ix_sessions_pending_due", "sessions", ["status", "next_attempt_at", "tenant_id"]
    )
    op.create_index(
        "ix_sessions_retryable",
        "sessions",
        ["tenant_id"],
        postgresql_where=sa.text(RETRYABLE),
        sqlite_where=sa.text(RETRYABLE),
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in _finder_role_statements():
        op.execute(statement)
    op.execute(f"GRANT USAGE ON SCHEMA public TO {FINDER_ROLE}")
    # The columns the functions read, no more (no prompts, results or errors).
    op.execute(f"GRANT SELECT (slug, active, deleted_at) ON tenants TO {FINDER_ROLE}")
    op.execute(f"GRANT SELECT ({', '.join(SESSION_COLUMNS)}) ON sessions TO {FINDER_ROLE}")
    op.execute(
        f"CREATE POLICY {FINDER_POLICY} ON sessions FOR SELECT TO {FINDER_ROLE} USING (true)"
    )
    # A new owner needs CREATE on the schema (PostgreSQL 15 grants PUBLIC none): for the
    # hand-over only.
    op.execute(f"GRANT CREATE ON SCHEMA public TO {FINDER_ROLE}")
    for signature, body in FUNCTIONS.items():
        for statement in _function_statements(signature, body):
            op.execute(statement)
    op.execute(f"REVOKE CREATE ON SCHEMA public FROM {FINDER_ROLE}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for signature in FUNCTIONS:
            op.execute(f"DROP FUNCTION IF EXISTS {signature.replace('as_of ', '')}")
        op.execute(f"DROP POLICY IF EXISTS {FINDER_POLICY} ON sessions")
        op.execute(f"REVOKE ALL ON tenants, sessions FROM {FINDER_ROLE}")
        op.execute(f"REVOKE USAGE ON SCHEMA public FROM {FINDER_ROLE}")
        # The role stays (cluster-wide: other databases of the cluster may use it), as in 0001.
    op.drop_index("ix_sessions_retryable", table_name="sessions")
    op.drop_index("ix_sessions_pending_due", table_name="sessions")
