"""Claiming sessions for waves: atomic and within the tenant's quota, on PostgreSQL and SQLite.

Contract: two dispatchers claiming at the same moment never claim one session twice; a tenant
limited to 2 concurrent sessions with 6 submitted never has more than 2 active, however many
dispatchers claim at once; the rest wait in PENDING and are claimed as slots free up.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import event

from domain.caller import Caller
from domain.clock import utcnow
from domain.errors import IdempotencyKeyReused
from domain.session import SessionStatus
from domain.tenant import Tenant
from resources.database import Database, tenant_scope, unit_of_work
from services.session_service import Claim, SessionService, SubmitSession

LEASE = timedelta(minutes=5)


def new_tenant(database: Database, limit: int) -> str:
    slug = f"t-{uuid.uuid4().hex[:10]}"
    with unit_of_work(database) as uow:
        uow.tenants.add(Tenant(slug=slug, name=slug, max_concurrent_sessions=limit))
    return slug


def submit(service: SessionService, tenant: str, count: int) -> list[str]:
    return [
        service.submit(
            Caller.operator(), tenant, SubmitSession(title=f"task {n}", prompt=f"do {n}")
        ).id
        for n in range(count)
    ]


def claim_concurrently(database: Database, tenant: str, dispatchers: int) -> list[Claim]:
    """`dispatchers` threads, each with its own service, claim at the same instant."""
    barrier = threading.Barrier(dispatchers)
    claims: list[Claim] = []
    errors: list[BaseException] = []

    def dispatch(number: int) -> None:
        service = SessionService(database)
        barrier.wait()
        try:
            claims.append(service.claim_pending(tenant, 100, LEASE, lambda s: f"wave-{number}"))
        except BaseException as error:  # surfaced below, with the thread's failure
            errors.append(error)

    threads = [threading.Thread(target=dispatch, args=(n,)) for n in range(dispatchers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return claims


def test_two_dispatchers_at_once_never_claim_one_session_twice(database: Database) -> None:
    tenant = new_tenant(database, limit=50)
    service = SessionService(database)
    submitted = set(submit(service, tenant, 20))

    claims = claim_concurrently(database, tenant, dispatchers=2)

    claimed = [session.id for claim in claims for session in claim.sessions]
    assert len(claimed) == len(set(claimed)) == 20
    assert set(claimed) == submitted
    with tenant_scope(tenant), unit_of_work(database) as uow:
        for session_id in submitted:
            session = uow.sessions.get(session_id)
            owners = {claim.owner for claim in claims if session in claim.sessions}
            assert session.status is SessionStatus.QUEUED
            assert session.lease_owner in owners
            queued = [e for e in uow.sessions.events(session_id) if e.new_status == "QUEUED"]
            assert len(queued) == 1


def test_a_tenant_limited_to_two_never_has_more_than_two_active(database: Database) -> None:
    tenant = new_tenant(database, limit=2)
    service = SessionService(database)
    submitted = submit(service, tenant, 6)

    claims = claim_concurrently(database, tenant, dispatchers=3)
    first_wave = [session for claim in claims for session in claim.sessions]
    assert len(first_wave) == 2
    with tenant_scope(tenant), unit_of_work(database) as uow:
        assert uow.sessions.count_active() == 2
        pending = uow.sessions.list(statuses={SessionStatus.PENDING})
    assert len(pending) == 4

    # A slot frees up: exactly one more is claimed, the highest priority / oldest first.
    finished = service.get(Caller.operator(), tenant, first_wave[0].id)
    service.cancel(Caller.operator(), tenant, finished.id)
    claims = claim_concurrently(database, tenant, dispatchers=3)
    second_wave = [session.id for claim in claims for session in claim.sessions]
    assert len(second_wave) == 1
    assert second_wave[0] == sorted(s for s in submitted if s not in {x.id for x in first_wave})[0]
    with tenant_scope(tenant), unit_of_work(database) as uow:
        assert uow.sessions.count_active() == 2


def test_a_claim_can_leave_recent_sessions_to_the_waves_that_top_up(database: Database) -> None:
    """`due_by`: only sessions waiting since then are claimed (the dispatcher's fallback while
    a live wave of the tenant takes on new sessions itself)."""
    tenant = new_tenant(database, limit=10)
    now = utcnow()
    early = SessionService(database, clock=lambda: now - timedelta(seconds=30))
    early_ids = [
        early.submit(Caller.operator(), tenant, SubmitSession(title="early", prompt="do it")).id
    ]
    recent_ids = submit(SessionService(database, clock=lambda: now), tenant, 2)
    service = SessionService(database, clock=lambda: now)

    claim = service.claim_pending(
        tenant, 10, LEASE, lambda s: "wave-late", due_by=now - timedelta(seconds=10)
    )

    assert [s.id for s in claim.sessions] == early_ids
    rest = service.claim_pending(tenant, 10, LEASE, lambda s: "wave-now")
    assert sorted(s.id for s in rest.sessions) == sorted(recent_ids)


def test_a_claim_can_take_only_sessions_that_fit_a_runtime_budget(database: Database) -> None:
    tenant = new_tenant(database, limit=10)
    service = SessionService(database)
    short = service.submit(
        Caller.operator(), tenant, SubmitSession(title="short", prompt="a", max_duration_seconds=60)
    )
    service.submit(
        Caller.operator(),
        tenant,
        SubmitSession(title="long", prompt="b", max_duration_seconds=7200),
    )

    claim = service.claim_pending(tenant, 10, LEASE, lambda s: "wave", max_duration_seconds=600)

    assert [s.id for s in claim.sessions] == [short.id]


def test_submits_racing_with_one_idempotency_key_get_one_session(database: Database) -> None:
    """Four threads submit the same request at the same instant: one session, the same id for
    all (on PostgreSQL the losers hit the unique key and are answered with the winner's)."""
    tenant = new_tenant(database, limit=10)
    barrier = threading.Barrier(4, timeout=30)
    ids: list[str] = []
    errors: list[str] = []

    def submit_once() -> None:
        request = SubmitSession(title="once", prompt="Do it once.", idempotency_key="req-1")
        service = SessionService(database)
        try:
            barrier.wait()
            ids.append(service.submit(Caller.operator(), tenant, request).id)
        except Exception as error:  # reported by the assertion below
            errors.append(repr(error))

    threads = [threading.Thread(target=submit_once) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert len(ids) == 4 and len(set(ids)) == 1
    with tenant_scope(tenant), unit_of_work(database) as uow:
        assert [s.id for s in uow.sessions.list()] == ids[:1]


def test_submits_racing_with_one_idempotency_key_for_other_prompts_get_one_session(
    database: Database,
) -> None:
    """Four threads submit four prompts with one key at the same instant: one wins, the three
    others are refused naming the key (the losers of the unique key too), never answered with
    the winner's session as if it were theirs."""
    tenant = new_tenant(database, limit=10)
    barrier = threading.Barrier(4, timeout=30)
    ids: list[str] = []
    refused: list[IdempotencyKeyReused] = []

    def submit_once(n: int) -> None:
        request = SubmitSession(title="once", prompt=f"Do it {n}.", idempotency_key="req-1")
        service = SessionService(database)
        barrier.wait()
        try:
            ids.append(service.submit(Caller.operator(), tenant, request).id)
        except IdempotencyKeyReused as error:
            refused.append(error)

    threads = [threading.Thread(target=submit_once, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(ids) == 1 and len(refused) == 3
    assert {(error.key, error.session_id) for error in refused} == {("req-1", ids[0])}
    with tenant_scope(tenant), unit_of_work(database) as uow:
        assert [s.id for s in uow.sessions.list()] == ids


def statement_kinds(database: Database, work: Callable[[], object]) -> list[str]:
    """The first word of every statement `work` sends (and "FOR UPDATE" for a row lock)."""
    statements: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement.lstrip().split(None, 1)[0].upper())
        if "FOR UPDATE" in statement.upper():
            statements.append("FOR UPDATE")

    event.listen(database.engine, "before_cursor_execute", record)
    try:
        work()
    finally:
        event.remove(database.engine, "before_cursor_execute", record)
    return statements


@pytest.mark.parametrize("submitted", [0, 5], ids=["nothing-due", "quota-full"])
def test_a_look_that_finds_nothing_to_take_only_reads(database: Database, submitted: int) -> None:
    """The waves look for their tenant's due sessions every second and after every session they
    finish, the dispatcher every tick: a look that can take nothing (none due, or the quota
    full) must not lock the tenant row (on SQLite a write, queued behind every other writer)."""
    tenant = new_tenant(database, limit=2)
    service = SessionService(database)
    submit(service, tenant, submitted)
    taken = service.claim_pending(tenant, 100, LEASE, lambda s: "wave-1").sessions
    assert len(taken) == min(submitted, 2)

    found: list[Claim] = []
    kinds = statement_kinds(
        database,
        lambda: found.append(service.claim_pending(tenant, 100, LEASE, lambda s: "wave-1")),
    )
    assert found[0].sessions == []
    assert kinds and set(kinds) <= {"SELECT", "BEGIN"}, kinds
    with tenant_scope(tenant), unit_of_work(database) as uow:
        assert uow.sessions.count_active() == min(submitted, 2)
