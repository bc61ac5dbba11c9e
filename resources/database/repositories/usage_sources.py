"""Where a day's usage comes from: the sessions' and fine-tuning jobs' own histories (what the
`tenant_usage` asset reconciles the live counters with)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import select

from domain.fine_tuning import FineTuningStatus
from domain.session import SESSION_MACHINE, SessionStatus
from resources.database.repositories.base import TenantScopedRepository
from resources.database.schema import FineTuningJobRow, SessionEventRow, StatusEventRow

ATTEMPT_ENDS = tuple(
    status.value
    for status in SessionStatus
    if SESSION_MACHINE.is_final(status)
    or status in (SessionStatus.FAILED, SessionStatus.TIMEOUT, SessionStatus.ORPHANED)
)


@dataclass(frozen=True)
class SessionActivity:
    sessions: int  # sessions with an attempt on an agent that ended that day
    agent_seconds: float  # those attempts' time on an agent (RUNNING until the end)


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, tzinfo=UTC)
    return start, start + timedelta(days=1)


class UsageSourceRepository(TenantScopedRepository):
    def session_activity(self, day: date) -> SessionActivity:
        start, end = _day_bounds(day)
        ended = self._session.execute(
            select(SessionEventRow.session_id, SessionEventRow.seq).where(
                SessionEventRow.tenant_id == self.tenant_id,
                SessionEventRow.created_at >= start,
                SessionEventRow.created_at < end,
                SessionEventRow.new_status.in_(ATTEMPT_ENDS),
            )
        ).all()
        if not ended:
            return SessionActivity(0, 0.0)
        ends = {(session_id, seq) for session_id, seq in ended}
        history = self._session.execute(
            select(
                SessionEventRow.session_id,
                SessionEventRow.seq,
                SessionEventRow.new_status,
                SessionEventRow.created_at,
            )
            .where(
                SessionEventRow.tenant_id == self.tenant_id,
                SessionEventRow.session_id.in_({session_id for session_id, _ in ended}),
                SessionEventRow.new_status.is_not(None),
                SessionEventRow.created_at < end,
            )
            .order_by(SessionEventRow.session_id, SessionEventRow.seq)
        ).all()
        seconds, ran = 0.0, set()
        running_since: dict[str, datetime] = {}
        for session_id, seq, status, at in history:
            if status == SessionStatus.RUNNING.value:
                running_since.setdefault(session_id, at)  # a resume keeps the attempt's start
            elif (session_id, seq) in ends:
                started = running_since.pop(session_id, None)
                if started is not None:  # held by an agent (a cancel while queued was not)
                    seconds += (at - max(started, start)).total_seconds()
                    ran.add(session_id)
            elif status in ATTEMPT_ENDS:  # an earlier day's end: that attempt is not this day's
                running_since.pop(session_id, None)
        return SessionActivity(len(ran), seconds)

    def fine_tuning_tokens(self, day: date) -> int:
        start, end = _day_bounds(day)
        completed = select(StatusEventRow.entity_id).where(
            StatusEventRow.tenant_id == self.tenant_id,
            StatusEventRow.entity_kind == "fine_tuning_job",
            StatusEventRow.new_status == FineTuningStatus.COMPLETED.value,
            StatusEventRow.created_at >= start,
            StatusEventRow.created_at < end,
        )
        metrics = self._session.scalars(
            select(FineTuningJobRow.metrics).where(
                FineTuningJobRow.tenant_id == self.tenant_id,
                FineTuningJobRow.id.in_(completed),
            )
        )
        return sum(int((m or {}).get("trained_tokens") or 0) for m in metrics)
