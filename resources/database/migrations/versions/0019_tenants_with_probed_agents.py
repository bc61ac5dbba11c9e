"""Tenants with an agent server to probe: the agent-health sensor's one read across tenants.

As 0006, 0009 and 0018: the agent-health sensor visited every active tenant each tick (a
transaction each, agents or not: 1,000 tenants without agents cost it 1,000 transactions every
15 s); now it visits the tenants this finds. On PostgreSQL a SECURITY DEFINER function
`tenants_with_probed_agents()`, owned by the finder role, returns only the slugs of active
tenants with an ACTIVE agent on an OpenCode server (not an external one, which beats its own
heart); the finder role reads three columns of `agents` (tenant_id, status, kind), never an
address or a secret, through its own SELECT-only policy. An index on (status, kind, tenant_id)
keeps it O(active agents).

Revision ID: 0019
Revises: 0018
"""

from __future__ import annotations

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

APP_ROLE = "indorch_app"
FINDER_ROLE = "indorch_tenant_finder"  # created by 0006
FINDER_POLICY = "tenant_finder_reads_agents"
INDEX = "ix_agents_probed"
QUERY = """
    SELECT DISTINCT a.tenant_id FROM agents a
    WHERE a.status = 'ACTIVE' AND a.kind = 'opencode'
      AND (SELECT t.active AND t.deleted_at IS NULL FROM tenants t WHERE t.slug = a.tenant_id)
    ORDER BY a.tenant_id
"""


def upgrade() -> None:
    op.create_index(INDEX, "agents", ["status", "kind", "tenant_id"])
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"GRANT SELECT (tenant_id, status, kind) ON agents TO {FINDER_ROLE}")
    op.execute(f"CREATE POLICY {FINDER_POLICY} ON agents FOR SELECT TO {FINDER_ROLE} USING (true)")
    op.execute(f"GRANT CREATE ON SCHEMA public TO {FINDER_ROLE}")
    op.execute(
        "CREATE OR REPLACE FUNCTION tenants_with_probed_agents() "
        "RETURNS SETOF text LANGUAGE sql STABLE SECURITY DEFINER "
        f"SET search_path = pg_catalog, public AS $fn${QUERY}$fn$"
    )
    op.execute(f"ALTER FUNCTION tenants_with_probed_agents() OWNER TO {FINDER_ROLE}")
    op.execute("REVOKE ALL ON FUNCTION tenants_with_probed_agents() FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION tenants_with_probed_agents() TO {APP_ROLE}")
    op.execute(f"REVOKE CREATE ON SCHEMA public FROM {FINDER_ROLE}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS tenants_with_probed_agents()")
        op.execute(f"DROP POLICY IF EXISTS {FINDER_POLICY} ON agents")
        op.execute(f"REVOKE ALL ON agents FROM {FINDER_ROLE}")
    op.drop_index(INDEX, table_name="agents")
