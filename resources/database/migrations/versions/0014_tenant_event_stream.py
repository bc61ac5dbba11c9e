"""The tenant-wide live stream's index: a tenant's session events by row id.

The API's tenant-wide event stream reads a tenant's events after a row id (`id > anchor`) and
its newest row id; without this index both walk every tenant's events.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

INDEX = "ix_session_events_tenant_row"


def upgrade() -> None:
    op.create_index(INDEX, "session_events", ["tenant_id", "id"])


def downgrade() -> None:
    op.drop_index(INDEX, table_name="session_events")
