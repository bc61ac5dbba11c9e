"""Sessions no agent of their tenant can serve: they need a capability no active agent offers.

Such a session would hold a concurrency slot in a wave forever, waiting for an agent that never
comes, and block its tenant's other sessions. So the dispatcher's claim sets it aside: it stays
PENDING, marked `unroutable_since` with the reason as its status reason (one
`session.unroutable` event), and is no candidate again while marked. `sweep` then, each
dispatcher tick, lifts the mark once an agent offers what it needs (the same tick claims it), or
ends it FAILED with the reason after the bounded wait, not to be retried (a retry would only
wait again). A wave that claimed a session whose agents went away since hands it back with
`release` (QUEUED -> PENDING, its slot freed, marked like the others); one whose wave died is
handed back by the dispatcher instead of being adopted (`released_if_unroutable`).

Only capabilities make a session unroutable: full, unhealthy or broken agents are routing's
business (the session waits in its wave), and so is a tenant with no agent at all for a session
that needs no capability.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from domain.clock import utcnow
from domain.errors import ConcurrentModification
from domain.events import SessionEvent
from domain.routing import unserved_reason
from domain.session import Session, SessionStatus
from resources.database import Database, UnitOfWork, tenant_scope, unit_of_work

logger = logging.getLogger(__name__)
EventSink = Callable[[SessionEvent], None]
UNROUTABLE_EVENT = "session.unroutable"  # set aside, PENDING: no agent offers what it needs
ROUTABLE_EVENT = "session.routable"  # an agent offers it now: claimable again
ROUTABLE_AGAIN = "an agent offers what it needs now"
MAX_MARKING_ROUNDS = 20  # a claim's rounds of setting aside before it claims what it found


def offered_capabilities(uow: UnitOfWork) -> list[list[str]]:
    """The capabilities of each active agent of the tenant (a few rows, read once per claim)."""
    return [agent.capabilities for agent in uow.agents.list(active_only=True)]


def set_aside_if_unroutable(
    uow: UnitOfWork,
    session: Session,
    offered: list[list[str]],
    now: datetime,
    recorded: list[SessionEvent],
) -> bool:
    """True when no agent offers what the PENDING `session` needs: marked (once, with its
    event) and left PENDING, holding no slot; the caller does not claim it."""
    reason = unserved_reason(session.required_capabilities, offered)
    if reason is None:
        return False
    if session.mark_unroutable(reason, now):
        try:
            uow.sessions.save(session)
        except ConcurrentModification:  # changed meanwhile: not this claim's to take either
            return True
        recorded.append(uow.sessions.append_event(session.id, UNROUTABLE_EVENT, {}, reason, now))
    return True


def released_if_unroutable(
    uow: UnitOfWork, stale: list[Session], now: datetime, recorded: list[SessionEvent]
) -> list[Session]:
    """Of sessions whose wave is gone, those still to adopt: one claimed (QUEUED) that no agent
    can serve any more goes back to PENDING, set aside, instead of to a wave waiting forever."""
    offered = offered_capabilities(uow)
    kept: list[Session] = []
    for session in stale:
        reason = unserved_reason(session.required_capabilities, offered)
        if session.status is not SessionStatus.QUEUED or reason is None:
            kept.append(session)
            continue
        try:
            event = session.release_unroutable(reason, now)
            recorded.append(uow.sessions.save_transition(session, event))
        except ConcurrentModification:  # changed meanwhile: neither released nor adopted
            continue
    return kept


class UnroutableSessions:
    def __init__(
        self,
        database: Database,
        publish: EventSink | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._database = database
        self._publish = publish or (lambda event: None)
        self._clock = clock

    def sweep(self, tenant_id: str, wait: timedelta, limit: int = 100) -> list[Session]:
        """The tenant's set-aside sessions that changed: claimable again (an agent offers what
        they need now) or FAILED (set aside for `wait`). One indexed read when there are none."""
        now = self._clock()
        changed: list[Session] = []
        recorded: list[SessionEvent] = []
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            waiting = uow.sessions.unroutable(limit)
            if not waiting:
                return changed
            offered = offered_capabilities(uow)
            for session in waiting:
                reason = unserved_reason(session.required_capabilities, offered)
                try:
                    if reason is None:
                        session.clear_unroutable(ROUTABLE_AGAIN)
                        uow.sessions.save(session)
                        event = uow.sessions.append_event(
                            session.id, ROUTABLE_EVENT, {}, ROUTABLE_AGAIN, now
                        )
                    elif session.unroutable_since and now - session.unroutable_since >= wait:
                        event = uow.sessions.save_transition(
                            session, session.fail_unroutable(reason, now)
                        )
                    else:
                        continue
                except ConcurrentModification:  # cancelled meanwhile, say: the next sweep sees
                    continue
                recorded.append(event)
                changed.append(session)
        for event in recorded:
            self._publish(event)
        return changed

    def release(self, tenant_id: str, session_id: str, owner: str) -> Session | None:
        """Hand a claimed session that no agent offers what it needs (any more) back to PENDING:
        its slot is freed and it waits set aside like one never claimed. None, and nothing
        changed, when `owner` does not hold it QUEUED or an agent can still serve it (a full
        agent is waited for in the wave)."""
        now = self._clock()
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            session = uow.sessions.get(session_id)
            if session.status is not SessionStatus.QUEUED or session.lease_owner != owner:
                return None
            reason = unserved_reason(session.required_capabilities, offered_capabilities(uow))
            if reason is None:
                return None
            try:
                recorded = uow.sessions.save_transition(
                    session, session.release_unroutable(reason, now)
                )
            except ConcurrentModification:
                return None
        logger.info(
            "tenant %s: session %s handed back by %s: %s", tenant_id, session_id, owner, reason
        )
        self._publish(recorded)
        return session

    def unserved(self, tenant_id: str, session_id: str) -> dict[str, str]:
        """Why no active agent could serve the session (or, for a decomposed request, each of
        its subtasks), by session id; empty when every one could be served."""
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            session = uow.sessions.get(session_id)
            runs = uow.sessions.list(parent_id=session.id, limit=1000) or [session]
            offered = offered_capabilities(uow)
        reasons = {s.id: unserved_reason(s.required_capabilities, offered) for s in runs}
        return {run_id: reason for run_id, reason in reasons.items() if reason}
