"""The database side of the live event streams: what a follower reads when Redis cannot tell it.

Reads only, each in the tenant's scope (another tenant's session is `NotFound`): a session's
events after a seq, and the tenant-wide record by row id that `domain.tenant_event_cursor`
resumes from (see there for why a row id alone is not a cursor).
"""

from __future__ import annotations

from collections.abc import Collection

from domain.events import SessionEvent
from resources.database import Database, tenant_scope, unit_of_work

PAGE = 1000


class LiveEventLog:
    def __init__(self, database: Database) -> None:
        self._database = database

    def session_events(
        self, tenant_id: str, session_id: str, after_seq: int = 0, limit: int = PAGE
    ) -> list[SessionEvent]:
        """The session's events after `after_seq`, in seq order (at most `limit`)."""
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            return uow.sessions.events(session_id, after_seq=after_seq, limit=limit)

    def latest_seq(self, tenant_id: str, session_id: str) -> int:
        """The session's newest seq; `NotFound` when it is not the tenant's session."""
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            return uow.sessions.latest_event_seq(session_id)

    def tenant_events(
        self, tenant_id: str, after_id: int = 0, limit: int = PAGE
    ) -> list[tuple[int, SessionEvent]]:
        """The tenant's events after row id `after_id`, with their row ids, in id order."""
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            return uow.sessions.tenant_events(after_id=after_id, limit=limit)

    def newest_event_id(self, tenant_id: str) -> int:
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            return uow.sessions.newest_event_id()

    def seqs_up_to(
        self, tenant_id: str, session_ids: Collection[str], event_id: int
    ) -> dict[str, int]:
        """Per session, its newest seq among the events with row id up to `event_id`."""
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            return uow.sessions.seqs_up_to(session_ids, event_id)
