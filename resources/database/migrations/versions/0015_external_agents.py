"""External agents (EAP v1): `agents.kind` and the SHA-256 of an external agent's token.

- `agents.kind`: `opencode` (an OpenCode server the waves drive; every agent before) or
  `external` (handed each task at its endpoint, posts its result back).
- `agents.token_hash`: the external agent's token, SHA-256 only (unique: one token, one agent).

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.add_column(
            sa.Column("kind", sa.String(length=16), nullable=False, server_default="opencode")
        )
        batch.add_column(sa.Column("token_hash", sa.String(length=64), nullable=True))
        batch.create_unique_constraint(op.f("uq_agents_token_hash"), ["token_hash"])


def downgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.drop_constraint(op.f("uq_agents_token_hash"), type_="unique")
        batch.drop_column("token_hash")
        batch.drop_column("kind")
