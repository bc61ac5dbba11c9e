"""Sessions: required capabilities for routing, an optional cost cap, a lease index.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(
            sa.Column("required_capabilities", JSON_DOC, nullable=False, server_default="[]")
        )
        batch.add_column(sa.Column("cost_cap", JSON_DOC, nullable=True))
    op.create_index("ix_sessions_status_lease", "sessions", ["status", "lease_expires_at"])


def downgrade() -> None:
    op.drop_index("ix_sessions_status_lease", table_name="sessions")
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("cost_cap")
        batch.drop_column("required_capabilities")
