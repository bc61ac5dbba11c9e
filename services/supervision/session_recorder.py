"""Every write of a wave: its sessions' state changes, their observations, the end of an attempt.

Observations wait in an `EventBatch` and are written together (every fraction of a second) or
with the session's next state change, before it; each event is published after its commit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from domain.errors import ConcurrentModification
from domain.events import SessionEvent, StatusChanged
from domain.follow_up import FOLLOW_UP_EVENTS, undelivered
from domain.routing import unserved_reason
from domain.session import Session, SessionStatus
from resources.database import Database, UnitOfWork, tenant_scope, unit_of_work
from services.event_batch import EventBatch, PendingEvent
from services.session_outcome import SessionOutcome, outcome_of
from services.unroutable import offered_capabilities

if TYPE_CHECKING:
    from services.supervision.followed_session import FollowedSession

logger = logging.getLogger(__name__)
EventSink = Callable[[SessionEvent], None]


class StateChange:
    """A state change's transaction: its session's `pending` events go in with its transition
    (or on their own at the end, when it made none)."""

    def __init__(self, uow: UnitOfWork, pending: list[PendingEvent]) -> None:
        self.uow = uow
        self.pending = pending
        self.recorded: list[SessionEvent] = []

    def transition(self, session: Session, event: StatusChanged) -> None:
        observed = [e.new_event() for e in self.pending if e.session_id == session.id]
        self.pending = [e for e in self.pending if e.session_id != session.id]
        self.recorded += self.uow.sessions.save_transition_after(session, event, observed)

    def write_the_rest(self) -> None:
        if self.pending:
            self.recorded += EventBatch.write(self.uow, self.pending)
            self.pending = []


class SessionRecorder:
    """The writes of one wave (lease owner `owner`) of one tenant."""

    def __init__(
        self,
        database: Database,
        tenant: str,
        owner: str,
        publish: EventSink | None,
        clock: Callable[[], datetime],
    ) -> None:
        self._database = database
        self._tenant = tenant
        self._owner = owner
        self._publish = publish or (lambda event: None)
        self._clock = clock
        self._events = EventBatch()

    # -- sessions -------------------------------------------------------------------------------

    def load(self, session_id: str) -> Session:
        with unit_of_work(self._database) as uow:
            return uow.sessions.get(session_id)

    def save(self, session: Session) -> None:
        with unit_of_work(self._database) as uow:
            uow.sessions.save(session)

    def save_transition(self, session: Session, target: SessionStatus, reason: str) -> None:
        with self.state_change(session) as change:
            change.transition(session, session.transition_to(target, reason, at=self._clock()))

    def release_unroutable(self, session: Session) -> bool:
        """Hand a claimed session that no active agent can serve back to PENDING, set aside (as
        the dispatcher sets aside one it cannot route), in one transaction after its pending
        events. True when this wave is done with it: released, or no longer its QUEUED session;
        False when a fresh read finds an agent that serves it (keep waiting for one)."""
        with self.state_change(session) as change:
            current = change.uow.sessions.get(session.id)
            if current.status is not SessionStatus.QUEUED or current.lease_owner != self._owner:
                return True
            reason = unserved_reason(
                current.required_capabilities, offered_capabilities(change.uow)
            )
            if reason is None:
                return False
            change.transition(current, current.release_unroutable(reason, self._clock()))
        logger.info("tenant %s: session %s handed back: %s", self._tenant, session.id, reason)
        return True

    def current_outcome(self, session_id: str, reason: str) -> SessionOutcome:
        with tenant_scope(self._tenant):
            return outcome_of(self.load(session_id), reason)

    def finish(
        self,
        session: Session,
        target: SessionStatus,
        reason: str,
        sup: FollowedSession | None = None,
        *,
        delivered: dict[str, Any] | None = None,
        retryable: bool = True,
    ) -> SessionOutcome:
        """Record the end of this attempt: state, metrics, result (with what was `delivered`:
        the pushed branch and its patch), usage, agent performance. Not `retryable`: a retry
        would only repeat it (a ref that does not exist)."""
        if sup is not None:
            session.metrics = sup.tracker.metrics()
            session.result = {**sup.tracker.result(), **(delivered or {})}
        if target is not SessionStatus.COMPLETED and (sup is not None or not retryable):
            session.error = {"reason": reason}
            if not retryable:
                session.error["retryable"] = False
        session.lease_owner = None
        session.lease_expires_at = None
        try:
            with self.state_change(session) as change:
                uow = change.uow
                change.transition(session, session.transition_to(target, reason, at=self._clock()))
                if sup is not None:
                    delta = sup.tracker.usage_delta()
                    uow.usage.record(
                        self._clock().date(),
                        sessions=1,
                        tokens_in=delta.tokens_in,
                        tokens_out=delta.tokens_out,
                        cost_usd=delta.cost_usd,
                    )
                    agent = uow.agents.get_for_update(sup.link.agent.id)
                    agent.performance = agent.performance.record(target, at=self._clock())
                    uow.agents.save(agent)
        except ConcurrentModification:
            current = self.load(session.id)
            return outcome_of(current, f"changed meanwhile: {current.status.value}")
        logger.info(
            "session %s of tenant %s: %s (%s)", session.id, session.tenant_id, target.value, reason
        )
        return outcome_of(session, reason)

    @contextmanager
    def state_change(self, session: Session) -> Iterator[StateChange]:
        """One transaction for a state change, the session's pending events written before it
        (its history keeps its order) with its own statements; what it recorded is published
        after the commit. If the transaction fails, the events stay pending."""
        pending = self._events.take(session.id)
        try:
            with unit_of_work(self._database) as uow:
                change = StateChange(uow, pending)
                yield change
                change.write_the_rest()
        except BaseException:
            self._events.restore(pending)
            raise
        for event in change.recorded:
            self._publish(event)

    def queued_messages(self, session_id: str) -> list[SessionEvent]:
        """Follow-up messages queued on the session and not delivered yet, oldest first."""
        with tenant_scope(self._tenant), unit_of_work(self._database) as uow:
            return undelivered(uow.sessions.events_of_types(session_id, FOLLOW_UP_EVENTS))

    # -- observations ---------------------------------------------------------------------------

    def append(self, session_id: str, event_type: str, data: dict[str, Any]) -> None:
        """Record an observation; written with the next flush or state change (EventBatch)."""
        self._events.add(session_id, event_type, data, at=self._clock())

    async def flush_periodically(self, every_seconds: float) -> None:
        while True:
            await asyncio.sleep(every_seconds)
            if self._events:
                self.flush()

    def flush(self) -> None:
        """Write the pending events; if the database fails, they wait for the next flush."""
        try:
            with tenant_scope(self._tenant):
                written = self._events.flush(self._database)
        except Exception as error:
            logger.warning(
                "tenant %s: wave %s could not write %d session events yet: %r",
                self._tenant,
                self._owner,
                len(self._events),
                error,
            )
            return
        for event in written:
            self._publish(event)
