"""Invariants the database keeps: checkpoint pruning, gap-free event numbering, atomic usage
counters, idempotency keys unique per tenant, one workspace per tenant and agent server replaced
only over the record as read. Concurrency is exercised on PostgreSQL (workspaces: both)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from domain.agent import Agent
from domain.checkpoint import MAX_CHECKPOINTS_KEPT
from domain.errors import AlreadyExists, ConcurrentModification
from domain.session import Session, SessionStatus
from domain.workspace import TenantWorkspace
from resources.database import Database
from resources.database.schema import CheckpointRow
from resources.database.unit_of_work import UnitOfWork
from tests.integration.database.support import in_threads, new_tenant, run_as

THREADS = 4
PER_THREAD = 10


def _add_session(db: Database, tenant: str, **fields: object) -> Session:
    return run_as(
        db,
        tenant,
        lambda uow: uow.sessions.add(
            Session(tenant_id=tenant, title="Work", initial_prompt="Do it.", **fields)
        ),
    )


# --- checkpoints ------------------------------------------------------------------------------


def test_only_the_newest_checkpoints_are_kept(database: Database, tenant: str) -> None:
    session = _add_session(database, tenant)
    total = MAX_CHECKPOINTS_KEPT + 5

    def add_all(uow: UnitOfWork) -> None:
        for number in range(1, total + 1):
            uow.sessions.add_checkpoint(session.id, session.add_checkpoint({"n": number}))

    run_as(database, tenant, add_all)

    def stored(uow: UnitOfWork) -> tuple[list[int], int]:
        rows = uow.session.scalar(
            select(func.count()).where(CheckpointRow.session_id == session.id)
        )
        return [c.sequence for c in uow.sessions.checkpoints(session.id)], int(rows or 0)

    sequences, rows = run_as(database, tenant, stored)
    assert sequences == list(range(6, total + 1))
    assert rows == MAX_CHECKPOINTS_KEPT
    loaded = run_as(database, tenant, lambda uow: uow.sessions.get(session.id))
    assert [c.sequence for c in loaded.checkpoints] == sequences
    assert [c.data for c in loaded.checkpoints][-1] == {"n": total}
    assert [c.sequence for c in session.checkpoints] == sequences  # the domain agrees


# --- event numbering --------------------------------------------------------------------------


def test_events_are_numbered_from_one_in_order(database: Database, tenant: str) -> None:
    session = _add_session(database, tenant)

    def work(uow: UnitOfWork) -> None:
        uow.sessions.save_transition(session, session.transition_to(SessionStatus.RUNNING))
        uow.sessions.append_event(session.id, "agent.message", {"text": "hi"})
        uow.sessions.save_transition(session, session.transition_to(SessionStatus.COMPLETED))

    run_as(database, tenant, work)
    events = run_as(database, tenant, lambda uow: uow.sessions.events(session.id))
    assert [(e.seq, e.event_type, e.old_status, e.new_status) for e in events] == [
        (1, "session.created", None, "PENDING"),
        (2, "session.status_changed", "PENDING", "RUNNING"),
        (3, "agent.message", None, None),
        (4, "session.status_changed", "RUNNING", "COMPLETED"),
    ]
    after_two = run_as(database, tenant, lambda uow: uow.sessions.events(session.id, after_seq=2))
    assert [e.seq for e in after_two] == [3, 4]


def test_concurrent_appends_number_events_without_gaps(pg_database: Database) -> None:
    tenant = new_tenant(pg_database)
    session = _add_session(pg_database, tenant)

    def append(worker: int) -> None:
        for number in range(PER_THREAD):
            run_as(
                pg_database,
                tenant,
                lambda uow, number=number: uow.sessions.append_event(
                    session.id, "tool.call", {"worker": worker, "n": number}
                ),
            )

    in_threads(THREADS, append)
    events = run_as(pg_database, tenant, lambda uow: uow.sessions.events(session.id))
    total = 1 + THREADS * PER_THREAD
    assert [e.seq for e in events] == list(range(1, total + 1))
    for worker in range(THREADS):  # each worker's events in the order it wrote them
        mine = [e.data["n"] for e in events if e.data.get("worker") == worker]
        assert mine == list(range(PER_THREAD))
    # the session's counter agrees, so the next event continues the sequence
    following = run_as(
        pg_database, tenant, lambda uow: uow.sessions.append_event(session.id, "done", {})
    )
    assert following.seq == total + 1


# --- usage ------------------------------------------------------------------------------------


def test_usage_records_add_up(database: Database, tenant: str) -> None:
    day = date(2026, 2, 1)

    def record(uow: UnitOfWork) -> None:
        uow.usage.record(day, sessions=1, tokens_in=10, tokens_out=5, cost_usd=Decimal("0.25"))
        uow.usage.record(day, tokens_in=1, cost_usd=0.125)
        uow.usage.record(date(2026, 2, 2), tokens_out=3)

    run_as(database, tenant, record)
    usage = run_as(database, tenant, lambda uow: uow.usage.between(day, day))
    assert [(u.sessions, u.tokens_in, u.tokens_out, u.cost_usd) for u in usage] == [
        (1, 11, 5, Decimal("0.375"))
    ]
    assert run_as(database, tenant, lambda uow: uow.usage.tokens_since(day)) == 19


def test_tokens_since_counts_training_tokens_from_the_first_day_on(
    database: Database, tenant: str
) -> None:
    first = date(2026, 2, 1)

    def record(uow: UnitOfWork) -> None:
        uow.usage.record(date(2026, 1, 31), tokens_in=1000)  # the month before: not counted
        uow.usage.record(first, tokens_in=10, tokens_out=5)
        uow.usage.reconcile_day(date(2026, 2, 3), sessions=0, agent_seconds=0, fine_tuning_tokens=7)

    run_as(database, tenant, record)
    assert run_as(database, tenant, lambda uow: uow.usage.tokens_since(first)) == 22
    assert run_as(database, tenant, lambda uow: uow.usage.tokens_since(date(2026, 3, 1))) == 0


def test_concurrent_usage_increments_are_not_lost(pg_database: Database) -> None:
    tenant, other = new_tenant(pg_database), new_tenant(pg_database)
    day = date(2026, 3, 1)

    def record(worker: int) -> None:
        for _ in range(PER_THREAD):
            for slug in (tenant, other):
                run_as(
                    pg_database,
                    slug,
                    lambda uow: uow.usage.record(
                        day, sessions=1, tokens_in=3, tokens_out=2, cost_usd=Decimal("0.001")
                    ),
                )

    in_threads(THREADS, record)
    n = THREADS * PER_THREAD
    for slug in (tenant, other):
        usage = run_as(pg_database, slug, lambda uow: uow.usage.between(day, day))
        assert [
            (u.tenant_id, u.sessions, u.tokens_in, u.tokens_out, u.cost_usd) for u in usage
        ] == [(slug, n, 3 * n, 2 * n, Decimal("0.001") * n)]


# --- idempotency keys -------------------------------------------------------------------------


def test_idempotency_key_is_unique_per_tenant_not_globally(database: Database) -> None:
    first, second = new_tenant(database), new_tenant(database)
    key = "client-request-7"
    in_first = _add_session(database, first, idempotency_key=key)
    in_second = _add_session(database, second, idempotency_key=key)  # fine: another tenant

    found = run_as(database, first, lambda uow: uow.sessions.find_by_idempotency_key(key))
    assert found is not None and found.id == in_first.id
    found = run_as(database, second, lambda uow: uow.sessions.find_by_idempotency_key(key))
    assert found is not None and found.id == in_second.id
    assert run_as(database, first, lambda uow: uow.sessions.find_by_idempotency_key("x")) is None

    with pytest.raises(AlreadyExists) as taken:
        _add_session(database, first, idempotency_key=key)
    assert (taken.value.kind, taken.value.key) == ("session idempotency key", key)
    assert [s.id for s in run_as(database, first, lambda uow: uow.sessions.list())] == [in_first.id]


def test_sessions_without_idempotency_key_do_not_collide(database: Database, tenant: str) -> None:
    sessions = [_add_session(database, tenant) for _ in range(3)]
    listed = run_as(database, tenant, lambda uow: uow.sessions.list())
    assert [s.id for s in listed] == [s.id for s in reversed(sessions)]  # newest first


def test_a_wave_renews_the_leases_it_holds_in_one_statement(
    database: Database, tenant: str
) -> None:
    """Only the owner's supervisable sessions (QUEUED, RUNNING, DEGRADED) are renewed; the
    version stays (a lease is not a state change, so no writer's version check is disturbed)."""
    earlier = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    held = {
        status: _add_session(
            database, tenant, status=status, lease_owner="wave-1", lease_expires_at=earlier
        )
        for status in (SessionStatus.QUEUED, SessionStatus.RUNNING, SessionStatus.DEGRADED)
    }
    paused = _add_session(
        database,
        tenant,
        status=SessionStatus.PAUSED,
        lease_owner="wave-1",
        lease_expires_at=earlier,
    )
    others = _add_session(
        database,
        tenant,
        status=SessionStatus.RUNNING,
        lease_owner="wave-2",
        lease_expires_at=earlier,
    )
    until = earlier + timedelta(minutes=1)

    renewed = run_as(database, tenant, lambda uow: uow.sessions.renew_leases("wave-1", until))

    assert renewed == {session.id for session in held.values()}
    for session in held.values():
        stored = run_as(database, tenant, lambda uow, s=session: uow.sessions.get(s.id))
        assert (stored.lease_expires_at, stored.version) == (until, session.version)
    for untouched in (paused, others):
        stored = run_as(database, tenant, lambda uow, s=untouched: uow.sessions.get(s.id))
        assert stored.lease_expires_at == earlier


def test_an_agent_whose_breaker_opened_is_saved_and_read_back(
    database: Database, tenant: str
) -> None:
    """The breaker's opening time is a datetime inside the JSON performance column."""
    opened_at = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    agent = run_as(
        database,
        tenant,
        lambda uow: uow.agents.add(
            Agent(tenant_id=tenant, name="flaky", server_url="http://127.0.0.1:4096")
        ),
    )
    for _ in range(5):
        agent.performance = agent.performance.record(SessionStatus.FAILED, at=opened_at)
    assert agent.performance.breaker_opened_at == opened_at

    run_as(database, tenant, lambda uow: uow.agents.save(agent))

    stored = run_as(database, tenant, lambda uow: uow.agents.get(agent.id))
    assert stored.performance == agent.performance
    assert stored.performance.breaker_refuses(opened_at + timedelta(seconds=1))


# --- tenant workspaces ------------------------------------------------------------------------

SERVER = "http://127.0.0.1:4096"


def _record_workspace(db: Database, tenant: str, directory: str) -> TenantWorkspace:
    workspace = TenantWorkspace(tenant_id=tenant, server_url=SERVER, directory=directory)
    return run_as(db, tenant, lambda uow: uow.workspaces.add(workspace))


def test_a_second_workspace_on_one_server_already_exists_and_the_transaction_goes_on(
    database: Database, tenant: str
) -> None:
    """The loser of a race is told `AlreadyExists` under a savepoint: it reads the winner's
    workspace in the same transaction."""
    _record_workspace(database, tenant, "/wt/tenant-x")

    def lose(uow: UnitOfWork) -> tuple[AlreadyExists, TenantWorkspace | None]:
        second = TenantWorkspace(tenant_id=tenant, server_url=SERVER, directory="/wt/tenant-x-2")
        with pytest.raises(AlreadyExists) as taken:
            uow.workspaces.add(second)
        return taken.value, uow.workspaces.find(SERVER)

    taken, found = run_as(database, tenant, lose)
    assert (taken.kind, taken.key) == ("tenant workspace", SERVER)
    assert found is not None and found.directory == "/wt/tenant-x"


def test_workspaces_recorded_at_once_on_one_server_leave_the_first_one(
    database: Database, tenant: str
) -> None:
    outcomes: list[str] = []

    def record(index: int) -> None:
        try:
            _record_workspace(database, tenant, f"/wt/tenant-x-{index}")
            outcomes.append(f"/wt/tenant-x-{index}")
        except AlreadyExists:
            outcomes.append("lost")

    in_threads(THREADS, record)
    [winner] = [outcome for outcome in outcomes if outcome != "lost"]
    assert outcomes.count("lost") == THREADS - 1
    found = run_as(database, tenant, lambda uow: uow.workspaces.find(SERVER))
    assert found is not None and found.directory == winner


def test_a_workspace_is_replaced_only_as_it_was_read(database: Database, tenant: str) -> None:
    """A server reset gives the worktree's name, hence its directory, back: the version, not
    the directory alone, tells the second racer it came too late."""
    read = _record_workspace(database, tenant, "/wt/tenant-x")
    replaced = run_as(database, tenant, lambda uow: uow.workspaces.replace(read, "/wt/tenant-x"))
    assert (replaced.directory, replaced.version) == ("/wt/tenant-x", 2)

    with pytest.raises(ConcurrentModification):
        run_as(database, tenant, lambda uow: uow.workspaces.replace(read, "/wt/tenant-x-late"))
    assert run_as(database, tenant, lambda uow: uow.workspaces.find(SERVER)) == replaced

    run_as(database, tenant, lambda uow: uow.workspaces.remove(SERVER))
    assert run_as(database, tenant, lambda uow: uow.workspaces.list()) == []
