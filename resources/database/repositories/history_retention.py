"""Removal of the current tenant's expired session history, a bounded batch at a time.

What goes, for a session finished before the cutoff whose parent (if any) is finished too: its
checkpoints, and its events other than status transitions (the lifecycle, which usage
reconciliation reads) and, when it COMPLETED, the prompt and tool-call events its training
example is built from (`session_transcripts.py`). A session's `last_event_seq` is untouched, so
numbering never restarts; what is left of its history keeps its order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, delete, exists, not_, or_, select
from sqlalchemy.orm import aliased

from domain.checkpoint import MAX_CHECKPOINTS_KEPT
from domain.history_retention import EXHAUSTIBLE_STATES, FINAL_STATES
from domain.session import SessionStatus
from resources.database.repositories.base import TenantScopedRepository
from resources.database.repositories.session_transcripts import PROMPTED_EVENT, TOOL_EVENT
from resources.database.schema import CheckpointRow, SessionEventRow, SessionRow

_FINAL = tuple(status.value for status in FINAL_STATES)
_EXHAUSTIBLE = tuple(status.value for status in EXHAUSTIBLE_STATES)
_TRAINING_EVENTS = (PROMPTED_EVENT, TOOL_EVENT)


@dataclass(frozen=True)
class PrunedHistory:
    session_events: int = 0
    checkpoints: int = 0


def _finished(row: type[SessionRow]) -> ColumnElement[bool]:
    return or_(
        row.status.in_(_FINAL),
        and_(row.status.in_(_EXHAUSTIBLE), row.retry_count >= row.max_retries),
    )


class HistoryRetentionRepository(TenantScopedRepository):
    kind = "session"

    def prune_expired(self, finished_before: datetime, limit: int = 5000) -> PrunedHistory:
        """Delete at most `limit` expired events, and the checkpoints of at most
        `limit / MAX_CHECKPOINTS_KEPT` (at least 1) expired sessions."""
        tenant = self.tenant_id
        parent = aliased(SessionRow, name="parent")
        expired = select(SessionRow.id).where(
            SessionRow.tenant_id == tenant,
            SessionRow.updated_at < finished_before,
            _finished(SessionRow),
            or_(
                SessionRow.parent_id.is_(None),
                not_(
                    exists().where(
                        parent.id == SessionRow.parent_id,
                        parent.tenant_id == tenant,
                        not_(_finished(parent)),
                    )
                ),
            ),
        )
        completed = expired.where(SessionRow.status == SessionStatus.COMPLETED.value)
        doomed_events = (
            select(SessionEventRow.id)
            .where(
                SessionEventRow.tenant_id == tenant,
                SessionEventRow.session_id.in_(expired),
                SessionEventRow.new_status.is_(None),
                not_(
                    and_(
                        SessionEventRow.event_type.in_(_TRAINING_EVENTS),
                        SessionEventRow.session_id.in_(completed),
                    )
                ),
            )
            .limit(limit)
        )
        events = self._session.execute(
            delete(SessionEventRow)
            .where(SessionEventRow.id.in_(doomed_events))
            .execution_options(synchronize_session=False)
        ).rowcount
        with_checkpoints = (
            select(CheckpointRow.session_id)
            .where(CheckpointRow.tenant_id == tenant, CheckpointRow.session_id.in_(expired))
            .distinct()
            .limit(max(1, limit // MAX_CHECKPOINTS_KEPT))
        )
        checkpoints = self._session.execute(
            delete(CheckpointRow)
            .where(
                CheckpointRow.tenant_id == tenant, CheckpointRow.session_id.in_(with_checkpoints)
            )
            .execution_options(synchronize_session=False)
        ).rowcount
        return PrunedHistory(session_events=int(events or 0), checkpoints=int(checkpoints or 0))
