"""The wall between tenants (issue 10): agent servers claimed by one tenant each, agent password
variables kept to one prefix.

- `agent_server_claims`: a server (host and port, see `domain.agent_server_address.server_key`)
  belongs to the one tenant whose agent registered it first; row-level security as for every
  tenant table (0001), the primary key deciding between tenants. Existing agents claim their
  servers oldest first; an agent of another tenant on a server already claimed becomes INACTIVE
  (it takes no new sessions; re-activating it is refused while the other tenant holds the
  server).
- `tenant_secrets`: a tenant's named secrets, sealed (`resources.secret_box`; the column never
  holds clear text); row-level security as for every tenant table.
- The application role `indorch_app` (0001) may log in: the application connects as it rather
  than as the migrating user with `SET ROLE` (which `RESET ROLE` undid, back to the owner or a
  superuser). It stays NOSUPERUSER, NOBYPASSRLS, owns nothing and is a member of no role. Its
  password, where the server asks for one, is the operator's to set (`ALTER ROLE indorch_app
  PASSWORD ...`; the application reads it from INDORCH_APP_DATABASE_PASSWORD).
- `tenants` gets row-level security: with a tenant set (a tenant-scoped transaction) only that
  tenant's row is visible and updatable, and no tenant can be created; with none set (the
  operator, the sensors' finder functions) every row, as before.
- Agents whose password variable lacks the prefix `INDORCH_AGENT_PASSWORD_` become INACTIVE:
  the control plane no longer reads such a variable (it could be `DATABASE_URL`), so they could
  not authenticate; re-register them with a prefixed variable.

On PostgreSQL every tenant's rows are read and written with that tenant set, so the migration
works as a table owner subject to forced row-level security as well as a superuser.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import NamedTuple

import sqlalchemy as sa
from alembic import op

from domain.agent_server_address import password_env_problem, server_key

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

APP_ROLE = "indorch_app"  # created by 0001
CLAIMS = "agent_server_claims"
SECRETS = "tenant_secrets"
CURRENT_TENANT = "coalesce(current_setting('app.tenant_id', true), '')"
OWN_ROW_OR_OPERATOR = f"({CURRENT_TENANT} IN ('', slug))"
TENANT_POLICIES = (  # name, command, clauses
    ("tenant_reads_own", "SELECT", f"USING {OWN_ROW_OR_OPERATOR}"),
    (
        "tenant_updates_own",
        "UPDATE",
        f"USING {OWN_ROW_OR_OPERATOR} WITH CHECK {OWN_ROW_OR_OPERATOR}",
    ),
    ("operator_creates", "INSERT", f"WITH CHECK ({CURRENT_TENANT} = '')"),
)
# Roles are cluster-wide: two databases migrating at once may both try; either way it can log in.
APP_ROLE_LOGIN = f"""
    DO $$
    BEGIN
        IF NOT (SELECT rolcanlogin FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
            ALTER ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
        END IF;
    EXCEPTION WHEN OTHERS THEN
        IF NOT (SELECT rolcanlogin FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
            RAISE;
        END IF;
    END
    $$
"""


class _Agent(NamedTuple):
    id: str
    tenant_id: str
    server_url: str
    password_env: str | None
    created_at: datetime


def upgrade() -> None:
    op.create_table(
        CLAIMS,
        sa.Column("server_key", sa.String(length=300), nullable=False),
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.slug"],
            name=op.f("fk_agent_server_claims_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("server_key", name=op.f("pk_agent_server_claims")),
    )
    op.create_index(op.f("ix_agent_server_claims_tenant_id"), CLAIMS, ["tenant_id"])
    op.create_table(
        SECRETS,
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("sealed", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.slug"],
            name=op.f("fk_tenant_secrets_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "name", name=op.f("pk_tenant_secrets")),
    )
    if _is_postgres():
        _tenant_table_security(CLAIMS)
        _tenant_table_security(SECRETS)
    _claim_existing_servers()
    if _is_postgres():
        _guard_tenants()
        op.execute(APP_ROLE_LOGIN)


def _guard_tenants() -> None:
    op.execute("ALTER TABLE tenants ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE tenants FORCE ROW LEVEL SECURITY")
    for policy, command, clauses in TENANT_POLICIES:
        op.execute(f"CREATE POLICY {policy} ON tenants FOR {command} {clauses}")


def downgrade() -> None:
    if _is_postgres():
        for policy, _command, _clauses in TENANT_POLICIES:
            op.execute(f"DROP POLICY IF EXISTS {policy} ON tenants")
        op.execute("ALTER TABLE tenants NO FORCE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE tenants DISABLE ROW LEVEL SECURITY")
        # The role keeps LOGIN: it is cluster-wide, other databases may rely on it (as in 0001).
    op.drop_table(SECRETS)  # their policies and grants go with them
    op.drop_table(CLAIMS)


def _is_postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _tenant_table_security(table: str) -> None:
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {APP_ROLE}")
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    op.execute(
        f"""
        CREATE POLICY tenant_isolation ON {table}
        USING (tenant_id = current_setting('app.tenant_id', true))
        WITH CHECK (tenant_id = current_setting('app.tenant_id', true))
        """
    )


def _as_tenant(connection: sa.Connection, tenant: str) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(
            sa.text("SELECT set_config('app.tenant_id', :tenant, true)"), {"tenant": tenant}
        )


def _claim_existing_servers() -> None:
    connection = op.get_bind()
    tenants = list(connection.execute(sa.text("SELECT slug FROM tenants")).scalars())
    agents: list[_Agent] = []
    for tenant in tenants:
        _as_tenant(connection, tenant)
        rows = connection.execute(
            sa.text(
                "SELECT id, tenant_id, server_url, password_env, created_at FROM agents "
                "WHERE tenant_id = :tenant"
            ),
            {"tenant": tenant},
        )
        agents += [_Agent(*row) for row in rows]
    agents.sort(key=lambda agent: (_when(agent.created_at), agent.id))
    holders: dict[str, str] = {}
    claims: dict[str, list[str]] = {}
    inactive: dict[str, list[str]] = {}
    for agent in agents:
        try:
            key = server_key(agent.server_url)
        except ValueError:
            inactive.setdefault(agent.tenant_id, []).append(agent.id)
            continue
        holder = holders.setdefault(key, agent.tenant_id)
        if holder == agent.tenant_id and key not in claims.get(holder, []):
            claims.setdefault(holder, []).append(key)
        unsafe_password = agent.password_env and password_env_problem(agent.password_env)
        if holder != agent.tenant_id or unsafe_password:
            inactive.setdefault(agent.tenant_id, []).append(agent.id)
    now = datetime.now(UTC)
    for tenant in tenants:
        _as_tenant(connection, tenant)
        for key in claims.get(tenant, []):
            connection.execute(
                sa.text(
                    f"INSERT INTO {CLAIMS} (server_key, tenant_id, created_at) "
                    "VALUES (:key, :tenant, :now)"
                ),
                {"key": key, "tenant": tenant, "now": now},
            )
        for agent_id in inactive.get(tenant, []):
            connection.execute(
                sa.text(
                    "UPDATE agents SET status = 'INACTIVE', version = version + 1 "
                    "WHERE id = :id AND tenant_id = :tenant"
                ),
                {"id": agent_id, "tenant": tenant},
            )
    _as_tenant(connection, "")  # the rest of the migration's transaction acts for no tenant


def _when(value: datetime | str) -> str:
    """Creation times as sortable text (SQLite hands back strings)."""
    return value.isoformat() if isinstance(value, datetime) else str(value)
