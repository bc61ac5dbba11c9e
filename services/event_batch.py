"""A wave's observational session events, written together rather than one transaction each.

Routing decisions, prompts delivered, tool calls, retries: a wave records several per session,
and a transaction apiece was about a tenth of a wave's CPU. They wait here, each stamped with
the time it happened, and are written in one transaction per flush (every fraction of a second)
or, for one session, inside the transaction of its next state change, before it, so the
session's history keeps its order. State changes themselves are never batched: they are written
when they happen, so a killed wave loses at most its last fraction of a second of observations,
never a session's state. A completed agent step (`STEP_EVENT`) brings its checkpoint, written in
the same transaction as its event; the event keeps the step's text (scrubbed and bounded by
`domain.checkpoint`), which the live stream's readers see.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from domain.checkpoint import STEP_EVENT
from domain.clock import utcnow
from domain.errors import NotFound
from domain.events import SessionEvent
from resources.database import Database, NewEvent, UnitOfWork, unit_of_work

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PendingEvent:
    session_id: str
    event_type: str
    data: dict[str, Any]
    at: datetime = field(default_factory=utcnow)

    def new_event(self) -> NewEvent:
        """As the repository appends it; a completed step brings its checkpoint."""
        return NewEvent(
            self.event_type, self.data, self.at, checkpoint=self.event_type == STEP_EVENT
        )


class EventBatch:
    """Pending events of one tenant's sessions, in the order they happened."""

    def __init__(self) -> None:
        self._pending: list[PendingEvent] = []

    def __len__(self) -> int:
        return len(self._pending)

    def add(
        self,
        session_id: str,
        event_type: str,
        data: dict[str, Any],
        at: datetime | None = None,
    ) -> None:
        self._pending.append(PendingEvent(session_id, event_type, data, at or utcnow()))

    def take(self, session_id: str | None = None) -> list[PendingEvent]:
        """Remove and return the pending events (of one session, or all)."""
        if session_id is None:
            taken, self._pending = self._pending, []
            return taken
        taken = [e for e in self._pending if e.session_id == session_id]
        if taken:
            self._pending = [e for e in self._pending if e.session_id != session_id]
        return taken

    def restore(self, events: list[PendingEvent]) -> None:
        """Put back events whose transaction did not commit, ahead of the newer ones."""
        self._pending[:0] = events

    @staticmethod
    def write(uow: UnitOfWork, events: list[PendingEvent]) -> list[SessionEvent]:
        """Append `events` in `uow` (in the caller's tenant scope), in the order they were added,
        each session's together (`SessionRepository.append_events`).

        The events of a session that no longer exists are dropped with a warning; the others are
        written (the failed look-up changed nothing, so the transaction stays usable).
        """
        by_session: dict[str, list[PendingEvent]] = {}
        for pending in events:
            by_session.setdefault(pending.session_id, []).append(pending)
        written: dict[str, Iterator[SessionEvent]] = {}
        for session_id, pending_events in by_session.items():
            try:
                appended = uow.sessions.append_events(
                    session_id, [e.new_event() for e in pending_events]
                )
            except NotFound:
                logger.warning(
                    "session %s is gone: its %d events were dropped (%s)",
                    session_id,
                    len(pending_events),
                    ", ".join(sorted({e.event_type for e in pending_events})),
                )
                continue
            written[session_id] = iter(appended)
        return [next(written[e.session_id]) for e in events if e.session_id in written]

    def flush(self, database: Database) -> list[SessionEvent]:
        """Write every pending event in one transaction; on failure they stay pending."""
        events = self.take()
        if not events:
            return []
        try:
            with unit_of_work(database) as uow:
                return self.write(uow, events)
        except BaseException:
            self.restore(events)
            raise
