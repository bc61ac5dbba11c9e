"""The current tenant's completed sessions as transcripts for its training data, a page at a time
(keyset pagination by id: a dataset of 10,000 sessions never sits in one result set), each with the
tool calls of its last attempt."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import select

from domain.session import SessionStatus
from domain.training_examples import SessionTranscript
from resources.database.repositories.base import TenantScopedRepository
from resources.database.schema import SessionEventRow, SessionRow

PROMPTED_EVENT = "agent.prompted"  # each attempt starts with one
TOOL_EVENT = "agent.tool"


class SessionTranscriptRepository(TenantScopedRepository):
    kind = "session"

    def completed(self, after_id: str = "", limit: int = 500) -> list[SessionTranscript]:
        rows = self._session.execute(
            select(
                SessionRow.id,
                SessionRow.title,
                SessionRow.initial_prompt,
                SessionRow.result,
                SessionRow.retry_count,
            )
            .where(
                SessionRow.tenant_id == self.tenant_id,
                SessionRow.status == SessionStatus.COMPLETED.value,
                SessionRow.id > after_id,
            )
            .order_by(SessionRow.id)
            .limit(limit)
        ).all()
        tools = self._last_attempt_tools([row.id for row in rows])
        transcripts = []
        for row in rows:
            result = row.result or {}
            transcripts.append(
                SessionTranscript(
                    session_id=row.id,
                    title=row.title,
                    prompt=row.initial_prompt,
                    answer=str(result.get("text") or ""),
                    tool_calls=tools.get(row.id, []),
                    files_changed=[str(f.get("file")) for f in result.get("files") or []],
                    attempts=row.retry_count + 1,
                )
            )
        return transcripts

    def _last_attempt_tools(self, session_ids: list[str]) -> dict[str, list[str]]:
        if not session_ids:
            return {}
        events = self._session.execute(
            select(SessionEventRow.session_id, SessionEventRow.event_type, SessionEventRow.data)
            .where(
                SessionEventRow.tenant_id == self.tenant_id,
                SessionEventRow.session_id.in_(session_ids),
                SessionEventRow.event_type.in_((PROMPTED_EVENT, TOOL_EVENT)),
            )
            .order_by(SessionEventRow.session_id, SessionEventRow.seq)
        ).all()
        tools: dict[str, list[str]] = defaultdict(list)
        for session_id, event_type, data in events:
            if event_type == PROMPTED_EVENT:  # a new attempt: the earlier one's calls are not it
                tools[session_id] = []
            elif (data or {}).get("status") == "completed" and data.get("tool"):
                tools[session_id].append(str(data["tool"]))
        return dict(tools)
