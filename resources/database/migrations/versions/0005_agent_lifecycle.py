"""Agents: a lifecycle status (ACTIVE, DRAINING, INACTIVE) in place of the `active` flag.

Draining is a state of its own (no new sessions, the running ones finish), which a flag cannot
hold. Inactive agents of before become INACTIVE, the others ACTIVE. The agents table keeps its
row-level security and grants (0001): columns change, the table stays.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.add_column(
            sa.Column("status", sa.String(length=16), nullable=False, server_default="ACTIVE")
        )
    op.execute("UPDATE agents SET status = 'INACTIVE' WHERE NOT active")
    with op.batch_alter_table("agents") as batch:
        batch.drop_column("active")


def downgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.add_column(
            sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true())
        )
    op.execute("UPDATE agents SET active = (status = 'ACTIVE')")
    with op.batch_alter_table("agents") as batch:
        batch.drop_column("status")
