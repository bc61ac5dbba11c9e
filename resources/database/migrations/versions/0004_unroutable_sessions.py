"""Sessions: `unroutable_since`, when a PENDING session found no agent offering its capabilities.

The dispatcher leaves such a session PENDING (holding no slot) and fails it after a bounded wait;
a partial index keeps the few waiting ones cheap to find, per tenant and across tenants.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

INDEX = "ix_sessions_unroutable"
WAITING = sa.text("unroutable_since IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("unroutable_since", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        INDEX,
        "sessions",
        ["tenant_id", "unroutable_since"],
        postgresql_where=WAITING,
        sqlite_where=WAITING,
    )


def downgrade() -> None:
    op.drop_index(INDEX, table_name="sessions")
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("unroutable_since")
