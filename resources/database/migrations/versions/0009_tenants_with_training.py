"""Tenants with a fine-tuning job to follow: the fine-tuning sensor's one read across tenants.

As 0006 for sessions: on PostgreSQL a SECURITY DEFINER function `tenants_with_training()`, owned
by the finder role, returns only the slugs of active tenants with a QUEUED or RUNNING job; the
finder role reads three columns of `fine_tuning_jobs` (id, tenant_id, status) through its own
SELECT-only policy. An index on (status, tenant_id) keeps it O(jobs in flight).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

APP_ROLE = "indorch_app"
FINDER_ROLE = "indorch_tenant_finder"  # created by 0006
FINDER_POLICY = "tenant_finder_reads"
QUERY = """
    SELECT DISTINCT j.tenant_id FROM fine_tuning_jobs j
    WHERE j.status IN ('QUEUED', 'RUNNING')
      AND (SELECT t.active AND t.deleted_at IS NULL FROM tenants t WHERE t.slug = j.tenant_id)
    ORDER BY j.tenant_id
"""


def upgrade() -> None:
    op.create_index("ix_fine_tuning_jobs_status", "fine_tuning_jobs", ["status", "tenant_id"])
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"GRANT SELECT (id, tenant_id, status) ON fine_tuning_jobs TO {FINDER_ROLE}")
    op.execute(
        f"CREATE POLICY {FINDER_POLICY} ON fine_tuning_jobs FOR SELECT TO {FINDER_ROLE} "
        "USING (true)"
    )
    op.execute(f"GRANT CREATE ON SCHEMA public TO {FINDER_ROLE}")
    op.execute(
        "CREATE OR REPLACE FUNCTION tenants_with_training() RETURNS SETOF text LANGUAGE sql "
        f"STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $fn${QUERY}$fn$"
    )
    op.execute(f"ALTER FUNCTION tenants_with_training() OWNER TO {FINDER_ROLE}")
    op.execute("REVOKE ALL ON FUNCTION tenants_with_training() FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION tenants_with_training() TO {APP_ROLE}")
    op.execute(f"REVOKE CREATE ON SCHEMA public FROM {FINDER_ROLE}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS tenants_with_training()")
        op.execute(f"DROP POLICY IF EXISTS {FINDER_POLICY} ON fine_tuning_jobs")
        op.execute(f"REVOKE ALL ON fine_tuning_jobs FROM {FINDER_ROLE}")
    op.drop_index("ix_fine_tuning_jobs_status", table_name="fine_tuning_jobs")
