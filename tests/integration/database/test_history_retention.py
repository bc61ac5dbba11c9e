"""Retention of our own event history (`services/history_retention.py`), on SQLite and PostgreSQL.

A session finished longer ago than the retention loses its checkpoints and the events nothing
reads any more; its status transitions (the lifecycle, which usage reconciliation reads) and, when
it COMPLETED, the events its training example is built from stay. Sessions that are not finished
(running, waiting for a retry, a subtask whose parent still runs) or finished recently keep all.
"""

from __future__ import annotations

import importlib.util
import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

import resources.database
from domain.caller import Caller
from domain.clock import utcnow
from domain.errors import PermissionDenied
from domain.history_retention import EXHAUSTIBLE_STATES, FINAL_STATES, expiry_cutoff
from domain.session import Session, SessionStatus
from domain.tenant import Role
from resources.database import Database
from resources.database.unit_of_work import UnitOfWork
from services.history_retention import HistoryRetention
from tests.integration.database.support import APP_ROLE, new_tenant, run_as

NOW = utcnow()
LONG_AGO = NOW - timedelta(days=120)
RECENTLY = NOW - timedelta(days=2)
RETENTION_DAYS = 90
CREATED, STATUS = "session.created", "session.status_changed"


def _session_that(
    uow: UnitOfWork,
    tenant: str,
    path: list[SessionStatus],
    at: datetime,
    parent_id: str | None = None,
    max_retries: int = 3,
) -> Session:
    """A session taken through `path` at `at`, with the events a wave writes and 2 checkpoints."""
    session = Session(
        tenant_id=tenant,
        title="t",
        initial_prompt="Write a.md",
        created_at=at,
        updated_at=at,
        parent_id=parent_id,
        max_retries=max_retries,
    )
    uow.sessions.add(session)
    for status in path:
        if status is SessionStatus.RUNNING:
            uow.sessions.append_event(session.id, "agent.prompted", {"attempt": 1}, at=at)
        uow.sessions.save_transition(session, session.transition_to(status, at=at))
        if status is SessionStatus.RUNNING:
            uow.sessions.append_event(
                session.id, "agent.tool", {"tool": "write", "status": "completed"}, at=at
            )
            uow.sessions.append_event(session.id, "agent.step", {"text": "x" * 2000}, at=at)
            for step in (1, 2):
                uow.sessions.add_checkpoint(session.id, session.add_checkpoint({"s": step}, at=at))
    if path and path[-1] is SessionStatus.COMPLETED:
        session.result = {"text": "done", "files": [{"file": "a.md"}]}
        session.updated_at = at
        uow.sessions.save(session)
    return session


DONE = [SessionStatus.QUEUED, SessionStatus.RUNNING, SessionStatus.COMPLETED]


def _history(db: Database, tenant: str, session_id: str) -> tuple[list[str], int]:
    def read(uow: UnitOfWork) -> tuple[list[str], int]:
        events = uow.sessions.events(session_id)
        return [e.event_type for e in events], len(uow.sessions.checkpoints(session_id))

    return run_as(db, tenant, read)


@pytest.fixture
def world(database: Database) -> dict[str, str]:
    tenant, other = new_tenant(database, "keep"), new_tenant(database, "other")

    def write(uow: UnitOfWork) -> dict[str, str]:
        t = uow.sessions.tenant_id
        running_parent = _session_that(uow, t, [SessionStatus.RUNNING], LONG_AGO)
        return {
            "old_completed": _session_that(uow, t, DONE, LONG_AGO).id,
            "old_cancelled": _session_that(
                uow,
                t,
                [SessionStatus.QUEUED, SessionStatus.RUNNING, SessionStatus.STOPPED],
                LONG_AGO,
            ).id,
            "old_exhausted": _session_that(
                uow, t, [SessionStatus.RUNNING, SessionStatus.FAILED], LONG_AGO, max_retries=0
            ).id,
            "old_retry_left": _session_that(
                uow, t, [SessionStatus.RUNNING, SessionStatus.FAILED], LONG_AGO
            ).id,
            "old_running": running_parent.id,
            "old_child_of_running": _session_that(
                uow, t, DONE, LONG_AGO, parent_id=running_parent.id
            ).id,
            "recent_completed": _session_that(uow, t, DONE, RECENTLY).id,
        }

    ids = run_as(database, tenant, write)
    ids["other_old"] = run_as(
        database, other, lambda uow: _session_that(uow, other, DONE, LONG_AGO).id
    )
    ids["tenant"], ids["other"] = tenant, other
    return ids


def _transcript_tools(db: Database, tenant: str) -> dict[str, list[str]]:
    transcripts = run_as(db, tenant, lambda uow: uow.session_transcripts.completed())
    return {t.session_id: t.tool_calls for t in transcripts}


def _activity(db: Database, tenant: str) -> tuple[int, float]:
    day = LONG_AGO.date()
    found = run_as(db, tenant, lambda uow: uow.usage_sources.session_activity(day))
    return found.sessions, found.agent_seconds


def test_expired_history_goes_and_what_is_still_needed_stays(
    database: Database, world: dict[str, str]
) -> None:
    tenant = world["tenant"]
    before = {
        key: _history(database, tenant, world[key])
        for key in world
        if key.startswith(("old", "recent"))
    }
    tools_before = _transcript_tools(database, tenant)
    activity_before = _activity(database, tenant)

    report = HistoryRetention(database).prune(Caller.operator(), expiry_cutoff(RETENTION_DAYS, NOW))

    after = {key: _history(database, tenant, world[key]) for key in before}
    # Finished long ago: checkpoints and the agent's step events go; transitions stay, and for a
    # COMPLETED session the events its training example reads (prompted, tool calls).
    assert after["old_completed"] == (
        [CREATED, STATUS, "agent.prompted", STATUS, "agent.tool", STATUS],
        0,
    )
    assert after["old_cancelled"] == ([CREATED, STATUS, STATUS, STATUS], 0)
    assert after["old_exhausted"] == ([CREATED, STATUS, STATUS], 0)
    # Not finished (a retry is due, still running, a subtask of a running parent) or recent: all.
    for key in ("old_retry_left", "old_running", "old_child_of_running", "recent_completed"):
        assert after[key] == before[key], key
        assert before[key][1] == 2 and "agent.step" in before[key][0], key
    # Another tenant's expired history is pruned by the same (operator's) run.
    assert _history(database, world["other"], world["other_old"])[1] == 0
    # agent.step of the two COMPLETED; prompted, tool and step of the stopped and the exhausted
    assert report.session_events == 1 + 1 + 3 + 3
    assert report.checkpoints == 2 * 4
    assert report.tenants >= 2
    # What the training data and usage reconciliation read is unchanged.
    assert _transcript_tools(database, tenant) == tools_before
    assert _activity(database, tenant) == activity_before


def test_a_second_run_finds_nothing_and_sequences_stay_ordered(
    database: Database, world: dict[str, str]
) -> None:
    retention = HistoryRetention(database)
    retention.prune(Caller.operator(), expiry_cutoff(RETENTION_DAYS, NOW), batch_size=1)
    again = retention.prune(Caller.operator(), expiry_cutoff(RETENTION_DAYS, NOW))
    assert (again.session_events, again.checkpoints) == (0, 0)
    events = run_as(
        database, world["tenant"], lambda uow: uow.sessions.events(world["old_completed"])
    )
    seqs = [e.seq for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    # A later append keeps numbering after the last seq ever given, pruned ones included.
    appended = run_as(
        database,
        world["tenant"],
        lambda uow: uow.sessions.append_event(world["old_completed"], "note", {}),
    )
    assert appended.seq == 8  # seven were given before (created, 3 transitions, 3 agent events)


def test_only_the_operator_prunes(database: Database) -> None:
    tenant = new_tenant(database, "caller")
    with pytest.raises(PermissionDenied):
        HistoryRetention(database).prune(
            Caller.for_tenant(tenant, Role.ADMIN), expiry_cutoff(RETENTION_DAYS, NOW)
        )


@pytest.mark.postgres
def test_raw_sql_as_the_application_deletes_only_expired_events(
    pg_database: Database, pg_admin_engine: Engine
) -> None:
    """The database's own fence (migration 0013), whatever the application sends: no
    transition, nothing of an unfinished or just-finished session."""
    tenant = new_tenant(pg_database, "fence")
    ids = run_as(
        pg_database,
        tenant,
        lambda uow: {
            "expired": _session_that(uow, tenant, DONE, LONG_AGO).id,
            "running": _session_that(uow, tenant, [SessionStatus.RUNNING], LONG_AGO).id,
            "retry_left": _session_that(
                uow, tenant, [SessionStatus.RUNNING, SessionStatus.FAILED], LONG_AGO
            ).id,
            "just_finished": _session_that(uow, tenant, DONE, NOW - timedelta(hours=1)).id,
        },
    )
    with pg_admin_engine.connect() as connection, connection.begin() as transaction:
        connection.execute(text(f"SET LOCAL ROLE {APP_ROLE}"))
        connection.execute(text("SELECT set_config('app.tenant_id', :t, true)"), {"t": tenant})
        deleted = connection.execute(
            text("DELETE FROM session_events RETURNING session_id, event_type, new_status")
        ).all()
        transaction.rollback()
    # Leave nothing expired behind for the other tests of this module's database.
    HistoryRetention(pg_database).prune(Caller.operator(), expiry_cutoff(RETENTION_DAYS, NOW))
    assert {row.session_id for row in deleted} == {ids["expired"]}
    assert all(row.new_status is None for row in deleted)
    assert sorted(row.event_type for row in deleted) == [
        "agent.prompted",
        "agent.step",
        "agent.tool",
    ]


def test_the_database_fence_names_the_domain_states() -> None:
    """Migration 0013 spells the finished states out in SQL; they must stay the domain's."""
    versions = Path(resources.database.__file__).parent / "migrations" / "versions"
    path = versions / "0013_session_history_expiry.py"
    spec = importlib.util.spec_from_file_location("migration_0013", path)
    assert spec is not None and spec.loader is not None
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)

    def states(sql: str) -> set[str]:
        return set(re.findall(r"'(\w+)'", sql))

    assert states(migration.FINAL) == {s.value for s in FINAL_STATES}
    assert states(migration.RETRYABLE) == {s.value for s in EXHAUSTIBLE_STATES}
