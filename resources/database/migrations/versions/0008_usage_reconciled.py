"""Usage reconciled per day: agent time and fine-tuning tokens beside the live counters, and an
index to find a tenant's session events of one day.

The `tenant_usage` asset (partition = day x tenant) sets `sessions`, `agent_seconds` and
`fine_tuning_tokens` of a day from the sessions' and jobs' histories; the live counters (tokens,
cost) keep being added to as attempts end.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("usage") as table:
        table.add_column(sa.Column("agent_seconds", sa.Float(), nullable=False, server_default="0"))
        table.add_column(
            sa.Column("fine_tuning_tokens", sa.BigInteger(), nullable=False, server_default="0")
        )
    op.create_index(
        "ix_session_events_tenant_created", "session_events", ["tenant_id", "created_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_session_events_tenant_created", table_name="session_events")
    with op.batch_alter_table("usage") as table:
        table.drop_column("fine_tuning_tokens")
        table.drop_column("agent_seconds")
