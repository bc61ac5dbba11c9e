"""Retention of session history: the application may delete expired session events, and only those.

Until now `session_events` was append-only for the application role (0001: SELECT, INSERT). The
retention (services/history_retention.py) removes the expired part of finished sessions'
histories, so the role gets DELETE on it, fenced by a RESTRICTIVE row-level security policy
(ANDed with the tenant policy): a row may be deleted only when it is not a status transition
(`new_status IS NULL`) and its session is finished (a final state, or a retryable one with no
retries left) and unchanged for at least a day. Whatever the application sends, a transition or
any event of a running, retryable or just-finished session cannot be deleted. UPDATE stays
refused; `status_events` stays append-only.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

APP_ROLE = "indorch_app"  # 0001
POLICY = "session_history_expiry"
FINAL = "('COMPLETED', 'PARTIALLY_COMPLETED', 'STOPPED', 'CANCELLED')"  # domain/session.py
RETRYABLE = "('FAILED', 'TIMEOUT', 'ORPHANED')"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"GRANT DELETE ON session_events TO {APP_ROLE}")
    op.execute(
        f"""
        CREATE POLICY {POLICY} ON session_events AS RESTRICTIVE FOR DELETE
        USING (
            new_status IS NULL
            AND EXISTS (
                SELECT 1 FROM sessions s
                WHERE s.id = session_events.session_id
                  AND s.tenant_id = session_events.tenant_id
                  AND s.updated_at < now() - interval '1 day'
                  AND (s.status IN {FINAL}
                       OR (s.status IN {RETRYABLE} AND s.retry_count >= s.max_retries))
            )
        )
        """
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP POLICY IF EXISTS {POLICY} ON session_events")
    op.execute(f"REVOKE DELETE ON session_events FROM {APP_ROLE}")
