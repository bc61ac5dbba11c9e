"""A wave's observational session events are written together, in order, on SQLite and PostgreSQL.

Contract: events added for several sessions reach the database in one transaction when the
batch is flushed, each at the time it was added; a session's pending events written with its
state change keep their place before it in the session's history; an event whose session is
gone does not cost the others theirs.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import event

from domain.caller import Caller
from domain.checkpoint import STEP_EVENT
from domain.clock import utcnow
from domain.errors import NotFound
from domain.events import SessionEvent
from domain.session import SessionStatus
from resources.database import Database, NewEvent, tenant_scope, unit_of_work
from services.event_batch import EventBatch
from services.session_service import SessionService, SubmitSession
from tests.integration.database.support import new_tenant


def _submit(database: Database, tenant: str, count: int) -> list[str]:
    service = SessionService(database)
    return [
        service.submit(
            Caller.operator(), tenant, SubmitSession(title=f"task {n}", prompt=f"do {n}")
        ).id
        for n in range(count)
    ]


def _history(database: Database, tenant: str, session_id: str) -> list[tuple[int, str]]:
    with tenant_scope(tenant), unit_of_work(database) as uow:
        return [(e.seq, e.event_type) for e in uow.sessions.events(session_id)]


def test_a_flush_writes_every_pending_event_in_one_transaction(database: Database) -> None:
    tenant = new_tenant(database)
    first, second = _submit(database, tenant, 2)
    batch = EventBatch()
    added_at = utcnow() - timedelta(seconds=5)
    batch.add(first, "agent.prompted", {"n": 1}, at=added_at)
    batch.add(second, "agent.prompted", {"n": 2})
    batch.add(first, "agent.tool", {"tool": "write"})
    commits: list[object] = []
    listener = lambda connection: commits.append(connection)  # noqa: E731
    event.listen(database.engine, "commit", listener)
    try:
        with tenant_scope(tenant):
            written = batch.flush(database)
    finally:
        event.remove(database.engine, "commit", listener)

    assert len(commits) == 1
    assert [(e.session_id, e.event_type) for e in written] == [
        (first, "agent.prompted"),
        (second, "agent.prompted"),
        (first, "agent.tool"),
    ]
    assert written[0].at == added_at
    assert _history(database, tenant, first)[-2:] == [
        (2, "agent.prompted"),
        (3, "agent.tool"),
    ]
    assert len(batch) == 0


def test_pending_events_go_before_the_state_change_they_are_written_with(
    database: Database,
) -> None:
    tenant = new_tenant(database)
    (session_id,) = _submit(database, tenant, 1)
    other_id = _submit(database, tenant, 1)[0]
    batch = EventBatch()
    batch.add(session_id, "session.routed", {"agent_id": "AGENT-x"})
    batch.add(other_id, "session.routed", {"agent_id": "AGENT-y"})
    pending = batch.take(session_id)
    with tenant_scope(tenant), unit_of_work(database) as uow:
        written = batch.write(uow, pending)
        session = uow.sessions.get(session_id)
        change = session.transition_to(SessionStatus.CANCELLED, "test", at=utcnow())
        uow.sessions.save_transition(session, change)

    assert [e.event_type for e in written] == ["session.routed"]
    assert [kind for _, kind in _history(database, tenant, session_id)][-2:] == [
        "session.routed",
        "session.status_changed",
    ]
    assert len(batch) == 1  # the other session's event waits for the next flush


def test_an_event_of_a_missing_session_does_not_lose_the_others(database: Database) -> None:
    tenant = new_tenant(database)
    (session_id,) = _submit(database, tenant, 1)
    batch = EventBatch()
    batch.add(f"SESSION-{uuid.uuid4().hex[:12]}", "agent.tool", {})
    batch.add(session_id, "agent.tool", {"tool": "edit"})
    with tenant_scope(tenant):
        written = batch.flush(database)
    assert [e.session_id for e in written] == [session_id]
    assert _history(database, tenant, session_id)[-1][1] == "agent.tool"


def test_events_taken_for_a_change_that_failed_are_written_later(database: Database) -> None:
    tenant = new_tenant(database)
    (session_id,) = _submit(database, tenant, 1)
    batch = EventBatch()
    batch.add(session_id, "agent.tool", {"tool": "write"})
    pending = batch.take(session_id)
    with pytest.raises(RuntimeError), tenant_scope(tenant), unit_of_work(database) as uow:
        batch.write(uow, pending)
        raise RuntimeError("the state change failed")  # the transaction rolls back
    batch.restore(pending)
    with tenant_scope(tenant):
        batch.flush(database)
    assert _history(database, tenant, session_id)[-1][1] == "agent.tool"


def test_writing_outside_a_batch_still_refuses_a_missing_session(database: Database) -> None:
    tenant = new_tenant(database)
    with pytest.raises(NotFound), tenant_scope(tenant), unit_of_work(database) as uow:
        uow.sessions.append_event("SESSION-missing", "agent.tool", {})


def _statements_during(database: Database, action: Callable[[], object]) -> list[str]:
    statements: list[str] = []
    listener = lambda conn, cursor, statement, *rest: statements.append(statement)  # noqa: E731
    event.listen(database.engine, "before_cursor_execute", listener)
    try:
        action()
    finally:
        event.remove(database.engine, "before_cursor_execute", listener)
    return [s for s in statements if s.lstrip().upper().startswith(("INSERT", "UPDATE", "SELECT"))]


def test_a_sessions_events_cost_the_same_statements_however_many_they_are(
    database: Database,
) -> None:
    """One UPDATE reserves the session's next seqs and one INSERT writes its rows, so a wave's
    CPU grows with its sessions, not with what their agents did."""
    tenant = new_tenant(database)
    first, second = _submit(database, tenant, 2)
    batch = EventBatch()
    for n in range(6):
        batch.add(first, "agent.tool", {"n": n})
    batch.add(second, "agent.tool", {"n": 0})
    with tenant_scope(tenant):
        statements = _statements_during(database, lambda: batch.flush(database))

    updates = [s for s in statements if s.lstrip().upper().startswith("UPDATE")]
    inserts = [s for s in statements if s.lstrip().upper().startswith("INSERT")]
    assert (len(updates), len(inserts)) == (2, 2), statements
    assert [seq for seq, _ in _history(database, tenant, first)] == list(range(1, 8))
    assert [e[1] for e in _history(database, tenant, first)][1:] == ["agent.tool"] * 6


def test_steps_in_one_batch_get_consecutive_checkpoints_and_their_events_name_them(
    database: Database,
) -> None:
    tenant = new_tenant(database)
    (session_id,) = _submit(database, tenant, 1)
    batch = EventBatch()
    batch.add(session_id, STEP_EVENT, {"step": 1, "text": "first"})
    batch.add(session_id, "agent.tool", {"tool": "edit"})
    batch.add(session_id, STEP_EVENT, {"step": 2, "text": "second"})
    with tenant_scope(tenant):
        batch.flush(database)
    batch.add(session_id, STEP_EVENT, {"step": 3, "text": "third"})
    with tenant_scope(tenant):
        written = batch.flush(database)

    assert written[0].data["checkpoint"] == 3
    with tenant_scope(tenant), unit_of_work(database) as uow:
        steps = [e for e in uow.sessions.events(session_id) if e.event_type == STEP_EVENT]
        checkpoints = uow.sessions.checkpoints(session_id)
    assert [e.data["checkpoint"] for e in steps] == [1, 2, 3]
    assert [(c.sequence, c.data["text"]) for c in checkpoints] == [
        (1, "first"),
        (2, "second"),
        (3, "third"),
    ]


def test_a_batch_cannot_write_into_another_tenants_session(database: Database) -> None:
    """A wave writes in its tenant's scope: a session id of another tenant is as good as gone,
    its history untouched, and this tenant's own events still written."""
    victim = new_tenant(database)
    (victims_session,) = _submit(database, victim, 1)
    attacker = new_tenant(database)
    (own_session,) = _submit(database, attacker, 1)
    before = _history(database, victim, victims_session)
    batch = EventBatch()
    batch.add(victims_session, STEP_EVENT, {"step": 1, "text": "planted"})
    batch.add(victims_session, "agent.tool", {"tool": "rm -rf"})
    batch.add(own_session, "agent.tool", {"tool": "edit"})
    with tenant_scope(attacker):
        written = batch.flush(database)

    assert [e.session_id for e in written] == [own_session]
    assert _history(database, victim, victims_session) == before
    with tenant_scope(victim), unit_of_work(database) as uow:
        assert uow.sessions.checkpoints(victims_session) == []


def test_a_state_change_writes_the_sessions_pending_events_in_its_own_two_statements(
    database: Database,
) -> None:
    """The events a session's state change finds pending go into its conditional UPDATE (the
    seqs of all of them reserved at once) and its INSERT, before its own event: a wave's every
    state change costs the same statements whether or not observations wait."""
    tenant = new_tenant(database)
    (session_id,) = _submit(database, tenant, 1)
    observed = [
        NewEvent("session.routed", {"agent_id": "AGENT-x"}, utcnow()),
        NewEvent(STEP_EVENT, {"step": 1, "text": "looked"}, utcnow(), checkpoint=True),
        NewEvent("agent.tool", {"tool": "edit"}, utcnow()),
    ]

    def change() -> list[SessionEvent]:
        with tenant_scope(tenant), unit_of_work(database) as uow:
            session = uow.sessions.get(session_id)
            transition = session.transition_to(SessionStatus.CANCELLED, "test", at=utcnow())
            return uow.sessions.save_transition_after(session, transition, observed)

    written: list[SessionEvent] = []
    statements = _statements_during(database, lambda: written.extend(change()))

    session_updates = [s for s in statements if s.lstrip().upper().startswith("UPDATE SESSIONS")]
    event_inserts = [s for s in statements if "INSERT INTO SESSION_EVENTS" in s.upper()]
    assert (len(session_updates), len(event_inserts)) == (1, 1), statements
    history = _history(database, tenant, session_id)
    assert [kind for _, kind in history][-4:] == [
        "session.routed",
        STEP_EVENT,
        "agent.tool",
        "session.status_changed",
    ]
    assert [(e.seq, e.event_type) for e in written] == history[-4:]
    assert written[1].data["checkpoint"] == 1
    assert written[-1].new_status == "CANCELLED"
    with tenant_scope(tenant), unit_of_work(database) as uow:
        assert [c.data["text"] for c in uow.sessions.checkpoints(session_id)] == ["looked"]
