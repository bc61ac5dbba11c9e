"""Code repositories: a tenant's git repositories its sessions work on; sessions name one.

`code_repositories` gets the row-level security of the other tenant tables (0001): enabled and
forced, the policy `tenant_isolation`, read and write granted to the application role. Sessions
gain `repository` (a repository's name, kept as given: removing a repository leaves its sessions'
history as it was) and `ref` (where the session's worktree starts). Agents gain
`permission_policy`: how their sessions' permission requests are answered (`allow` only the
operator may set).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

APP_ROLE = "indorch_app"  # created by 0001
TABLE = "code_repositories"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("default_ref", sa.String(length=250), nullable=False),
        sa.Column("credentials_secret", sa.String(length=100), nullable=True),
        sa.Column("setup_script", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.slug"],
            name=op.f("fk_code_repositories_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "name", name=op.f("pk_code_repositories")),
    )
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("repository", sa.String(length=63), nullable=True))
        batch.add_column(sa.Column("ref", sa.String(length=250), nullable=True))
    with op.batch_alter_table("agents") as batch:
        batch.add_column(sa.Column("permission_policy", sa.String(length=16), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {TABLE} TO {APP_ROLE}")
        op.execute(f"ALTER TABLE {TABLE} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {TABLE} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"""
            CREATE POLICY tenant_isolation ON {TABLE}
            USING (tenant_id = current_setting('app.tenant_id', true))
            WITH CHECK (tenant_id = current_setting('app.tenant_id', true))
            """
        )


def downgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.drop_column("permission_policy")
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("ref")
        batch.drop_column("repository")
    op.drop_table(TABLE)  # its policy and grants go with it
