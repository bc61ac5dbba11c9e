"""Tenants with a webhook delivery due: the webhook sensor's one read across tenants.

As 0006 and 0009: the webhook delivery sensor visited every active tenant each tick (a
transaction each, whatever the work: 1,000 idle tenants cost it 1,000 transactions every 5 s);
now it visits the tenants this finds. On PostgreSQL a SECURITY DEFINER function
`tenants_with_due_webhooks(as_of)`, owned by the finder role, returns only the slugs of active
tenants with a PENDING delivery whose next attempt is due; the finder role reads four columns of
`webhook_deliveries` (id, tenant_id, status, next_attempt_at) through its own SELECT-only
policy. An index on (status, next_attempt_at, tenant_id) keeps it O(deliveries due).

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

APP_ROLE = "indorch_app"
FINDER_ROLE = "indorch_tenant_finder"  # created by 0006
FINDER_POLICY = "tenant_finder_reads_webhook_deliveries"
INDEX = "ix_webhook_deliveries_pending_due"
QUERY = """
    SELECT DISTINCT d.tenant_id FROM webhook_deliveries d
    WHERE d.status = 'PENDING' AND d.next_attempt_at <= as_of
      AND (SELECT t.active AND t.deleted_at IS NULL FROM tenants t WHERE t.slug = d.tenant_id)
    ORDER BY d.tenant_id
"""


def upgrade() -> None:
    op.create_index(INDEX, "webhook_deliveries", ["status", "next_attempt_at", "tenant_id"])
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        f"GRANT SELECT (id, tenant_id, status, next_attempt_at) ON webhook_deliveries "
        f"TO {FINDER_ROLE}"
    )
    op.execute(
        f"CREATE POLICY {FINDER_POLICY} ON webhook_deliveries FOR SELECT TO {FINDER_ROLE} "
        "USING (true)"
    )
    op.execute(f"GRANT CREATE ON SCHEMA public TO {FINDER_ROLE}")
    op.execute(
        "CREATE OR REPLACE FUNCTION tenants_with_due_webhooks(as_of timestamptz) "
        "RETURNS SETOF text LANGUAGE sql STABLE SECURITY DEFINER "
        f"SET search_path = pg_catalog, public AS $fn${QUERY}$fn$"
    )
    op.execute(f"ALTER FUNCTION tenants_with_due_webhooks(timestamptz) OWNER TO {FINDER_ROLE}")
    op.execute("REVOKE ALL ON FUNCTION tenants_with_due_webhooks(timestamptz) FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION tenants_with_due_webhooks(timestamptz) TO {APP_ROLE}")
    op.execute(f"REVOKE CREATE ON SCHEMA public FROM {FINDER_ROLE}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS tenants_with_due_webhooks(timestamptz)")
        op.execute(f"DROP POLICY IF EXISTS {FINDER_POLICY} ON webhook_deliveries")
        op.execute(f"REVOKE ALL ON webhook_deliveries FROM {FINDER_ROLE}")
    op.drop_index(INDEX, table_name="webhook_deliveries")
