"""`indorch retention run`: the expired history goes now; a bad number of days is refused."""

from __future__ import annotations

import json
from datetime import timedelta

from domain.clock import utcnow
from domain.session import Session, SessionStatus
from resources.database import Database, tenant_scope, unit_of_work
from tests.integration.cli.support import ok, refused


def _stopped_session(db_url: str, days_ago: int) -> str:
    at = utcnow() - timedelta(days=days_ago)
    database = Database(db_url)
    try:
        with tenant_scope("acme"), unit_of_work(database) as uow:
            session = Session(tenant_id="acme", title="t", initial_prompt="p", created_at=at)
            uow.sessions.add(session)
            uow.sessions.save_transition(
                session, session.transition_to(SessionStatus.RUNNING, at=at)
            )
            uow.sessions.append_event(session.id, "agent.step", {"text": "x"}, at=at)
            uow.sessions.save_transition(
                session, session.transition_to(SessionStatus.STOPPED, at=at)
            )
            return session.id
    finally:
        database.dispose()


def test_retention_run_removes_what_expired(db_url):
    _stopped_session(db_url, days_ago=20)
    _stopped_session(db_url, days_ago=3)
    counts = json.loads(ok(db_url, "retention", "run", "--days", "10", "--json"))
    assert (counts["session_events"], counts["checkpoints"]) == (1, 0)
    assert counts["webhook_deliveries"] == 0  # the tenant has no webhook
    again = json.loads(ok(db_url, "retention", "run", "--days", "1", "--json"))
    assert again["session_events"] == 1  # the 3-day-old one, now past the shorter retention


def test_a_bad_retention_is_refused(db_url):
    assert "at least 1 day" in refused(db_url, "retention", "run", "--days", "0")
    message = refused(db_url, "retention", "run", env={"INDORCH_HISTORY_RETENTION_DAYS": "x"})
    assert "INDORCH_HISTORY_RETENTION_DAYS" in message
