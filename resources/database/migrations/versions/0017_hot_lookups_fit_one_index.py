"""The lone `tenant_id` indexes of sessions and session events are dropped.

Every other index of both tables leads with `tenant_id`, so they served no look-up the others do
not, and cost an index entry per session and per event. Worse, they fitted look-ups they were
not made for: a plan PostgreSQL made on a new, never-analysed table (psycopg prepares a
statement after five runs, and PostgreSQL keeps its one generic plan for the connection's life)
took the lone index for the idempotency-key look-up of every submission and filtered the
tenant's sessions one by one, so a submission cost more with every session the tenant had.
Without it only the index made for a look-up (`uq_sessions_tenant_id` for the key) fits it.

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

DROPPED = (
    ("ix_sessions_tenant_id", "sessions"),
    ("ix_session_events_tenant_id", "session_events"),
)


def upgrade() -> None:
    for index, table in DROPPED:
        op.drop_index(index, table_name=table)


def downgrade() -> None:
    for index, table in DROPPED:
        op.create_index(index, table, ["tenant_id"])
