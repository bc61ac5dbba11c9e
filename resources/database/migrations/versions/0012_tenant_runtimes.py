"""Managed tenant runtimes: the `runtimes` table and the sealed password of managed agents.

- `runtimes`: the platform's record of each tenant's OpenCode runtime on a host (status, pid and
  its start time, port, the agent it is registered as, the wait for a memory slot). A tenant
  table: row-level security like every other (0001).
- `agents.password_sealed`: a managed runtime's server password, sealed with the platform's
  secret box (resources/secret_box.py); the registry of hand-registered agents keeps naming an
  environment variable instead (`password_env`).
- On PostgreSQL, the runtime manager's one read across tenants: `tenants_with_runtimes()`
  (SECURITY DEFINER, owned by 0006's finder role, which may read `runtimes.tenant_id` only)
  answers the slugs of tenants with a runtime record; everything else is read in each tenant's
  scope.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

APP_ROLE = "indorch_app"  # 0001
FINDER_ROLE = "indorch_tenant_finder"  # 0006
FINDER_POLICY = "tenant_finder_reads_runtimes"
TENANTS_WITH_RUNTIMES_SQL = """
    SELECT DISTINCT r.tenant_id FROM runtimes r
    WHERE (SELECT t.active AND t.deleted_at IS NULL FROM tenants t WHERE t.slug = r.tenant_id)
    ORDER BY r.tenant_id
"""


def upgrade() -> None:
    op.add_column("agents", sa.Column("password_sealed", sa.Text(), nullable=True))
    op.create_table(
        "runtimes",
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("os_user", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("sandboxed", sa.Boolean(), nullable=False),
        sa.Column("port", sa.Integer(), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("process_start", sa.BigInteger(), nullable=True),
        sa.Column("agent_id", sa.String(length=40), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("restarts", sa.Integer(), nullable=False),
        sa.Column("resident_mb", sa.Integer(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_busy_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("waiting_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.slug"],
            name=op.f("fk_runtimes_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "host", name=op.f("pk_runtimes")),
    )
    op.create_index(op.f("ix_runtimes_host_status"), "runtimes", ["host", "status"])
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON runtimes TO {APP_ROLE}")
    op.execute("ALTER TABLE runtimes ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE runtimes FORCE ROW LEVEL SECURITY")
    op.execute(
        """
        CREATE POLICY tenant_isolation ON runtimes
        USING (tenant_id = current_setting('app.tenant_id', true))
        WITH CHECK (tenant_id = current_setting('app.tenant_id', true))
        """
    )
    op.execute(f"GRANT SELECT (tenant_id) ON runtimes TO {FINDER_ROLE}")
    op.execute(
        f"CREATE POLICY {FINDER_POLICY} ON runtimes FOR SELECT TO {FINDER_ROLE} USING (true)"
    )
    op.execute(f"GRANT CREATE ON SCHEMA public TO {FINDER_ROLE}")  # for the hand-over only
    op.execute(
        "CREATE OR REPLACE FUNCTION tenants_with_runtimes() RETURNS SETOF text LANGUAGE sql "
        "STABLE SECURITY DEFINER SET search_path = pg_catalog, public "
        f"AS $fn${TENANTS_WITH_RUNTIMES_SQL}$fn$"
    )
    op.execute(f"ALTER FUNCTION tenants_with_runtimes() OWNER TO {FINDER_ROLE}")
    op.execute("REVOKE ALL ON FUNCTION tenants_with_runtimes() FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION tenants_with_runtimes() TO {APP_ROLE}")
    op.execute(f"REVOKE CREATE ON SCHEMA public FROM {FINDER_ROLE}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS tenants_with_runtimes()")
    op.drop_index(op.f("ix_runtimes_host_status"), table_name="runtimes")
    op.drop_table("runtimes")
    op.drop_column("agents", "password_sealed")
