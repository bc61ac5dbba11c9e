"""A submission costs one read and two inserts, each statement compiled once and then reused.

What the API's `POST /sessions` spends most of its time on is `SessionService.submit`: the tenant,
its tokens this month and the current promotion are read in one statement, then the session and
its first event are inserted (no savepoint); the idempotency key is checked by the unique index
on that insert. Counted on the engine, on SQLite and on PostgreSQL (under row-level security,
`app.tenant_id` set once per transaction); every statement after the first submission is served
from SQLAlchemy's compiled cache. The guarantees stay: the same key and request give the same
session, another request with a used key is refused, a promoted model is chosen unless the
submitter names one.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from domain.caller import Caller
from domain.errors import IdempotencyKeyReused, TokenBudgetExceeded
from domain.promotion import ModelPromotion
from domain.tenant import Role, Tenant
from resources.database import Database, tenant_scope, unit_of_work
from services.factory import ServiceFactory
from services.session_service import SubmitSession


@pytest.fixture
def tenant() -> str:
    return f"cost-{uuid.uuid4().hex[:8]}"


@contextmanager
def statements(database: Database) -> Iterator[list[tuple[str, Any]]]:
    """(SQL, cache outcome) of every statement the engine runs in the block."""
    seen: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, sql: str, params: Any, context: Any, many: bool) -> None:
        seen.append((" ".join(sql.split()), getattr(context, "cache_hit", None)))

    event.listen(database.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(database.engine, "before_cursor_execute", record)


def _factory(database: Database, tenant: str, budget: int = 1_000_000) -> ServiceFactory:
    factory = ServiceFactory(database)
    factory.tenants().create(
        Caller.operator(), Tenant(slug=tenant, name="Cost", monthly_token_budget=budget)
    )
    return factory


def _member(tenant: str) -> Caller:
    return Caller.for_tenant(tenant, Role.MEMBER)


def _request(number: int, **fields: Any) -> SubmitSession:
    return SubmitSession(
        title=f"Request {number}",
        prompt=f"Fix bug {number}",
        idempotency_key=f"k-{number}",
        **fields,
    )


def test_a_submission_is_one_read_and_two_inserts_all_cached(
    database: Database, tenant: str
) -> None:
    service = _factory(database, tenant).sessions()
    service.submit(_member(tenant), tenant, _request(1))  # compiles what the next ones reuse

    with statements(database) as seen:
        service.submit(_member(tenant), tenant, _request(2))

    queries = [sql for sql, _ in seen if not sql.startswith(("SELECT set_config", "BEGIN"))]
    assert [sql.split()[0] for sql in queries] == ["SELECT", "INSERT", "INSERT"], queries
    assert "SAVEPOINT" not in " ".join(queries)
    cache = database.engine.dialect.CACHE_HIT
    misses = [sql for sql, outcome in seen if outcome is not None and outcome != cache]
    assert misses == [], f"recompiled: {misses}"


def test_the_same_key_gives_the_same_session_and_another_request_is_refused(
    database: Database, tenant: str
) -> None:
    service = _factory(database, tenant).sessions()
    first = service.submit(_member(tenant), tenant, _request(1))

    again = service.submit(_member(tenant), tenant, _request(1))
    assert again.id == first.id
    with pytest.raises(IdempotencyKeyReused):
        service.submit(_member(tenant), tenant, _request(1, description="another request"))
    with tenant_scope(tenant), unit_of_work(database) as uow:
        assert [s.id for s in uow.sessions.list()] == [first.id]
        assert [e.seq for e in uow.sessions.events(first.id)] == [1]


def test_concurrent_submissions_with_one_key_answer_with_one_session(
    database: Database, tenant: str
) -> None:
    """Each may read the key as unused; the losers' inserts conflict, and they answer with the
    winner's session (looked up in a new transaction, as the failed one is rolled back)."""
    service = _factory(database, tenant).sessions()
    start = threading.Barrier(8)

    def submit(_: int) -> str:
        start.wait()
        return service.submit(_member(tenant), tenant, _request(1)).id

    with ThreadPoolExecutor(8) as pool:
        ids = set(pool.map(submit, range(8)))

    with tenant_scope(tenant), unit_of_work(database) as uow:
        assert ids == {s.id for s in uow.sessions.list()}
    assert len(ids) == 1


def test_the_promoted_model_and_the_token_budget_are_read_in_the_same_statement(
    database: Database, tenant: str
) -> None:
    factory = _factory(database, tenant, budget=100)
    with tenant_scope(tenant), unit_of_work(database) as uow:
        promotion = uow.promotions.add(ModelPromotion(tenant_id=tenant, model="tuned-7"))
    service = factory.sessions()

    promoted = service.submit(_member(tenant), tenant, _request(1))
    chosen = service.submit(_member(tenant), tenant, _request(2, model="openai/gpt-5"))

    assert promoted.model == promotion.opencode_model
    assert promoted.metadata["model_promotion"] == promotion.id
    assert chosen.model == "openai/gpt-5" and "model_promotion" not in chosen.metadata
    with tenant_scope(tenant), unit_of_work(database) as uow:
        uow.usage.record(promoted.created_at.date(), tokens_in=100)
    with pytest.raises(TokenBudgetExceeded):
        service.submit(_member(tenant), tenant, _request(3))


def test_a_replay_of_a_keyed_submission_answers_with_its_session_whatever_changed_since(
    database: Database, tenant: str
) -> None:
    """The key's session is found through the unique key, not read first: a replay (a client
    retrying after a lost answer) still gets its session when the tenant went over its token
    budget meanwhile, and another request with the key is still refused."""
    factory = _factory(database, tenant, budget=100)
    service = factory.sessions()
    first = service.submit(_member(tenant), tenant, _request(1))
    with tenant_scope(tenant), unit_of_work(database) as uow:
        uow.usage.record(first.created_at.date(), tokens_in=100)

    assert service.submit(_member(tenant), tenant, _request(1)).id == first.id
    with pytest.raises(IdempotencyKeyReused):
        service.submit(_member(tenant), tenant, _request(1, description="another request"))
    with pytest.raises(TokenBudgetExceeded):
        service.submit(_member(tenant), tenant, _request(2))


def test_another_tenants_key_never_answers_with_its_session_even_when_refused(
    database: Database, tenant: str
) -> None:
    """A hostile tenant replays the victim's idempotency key and request: it gets a session of its
    own, and, refused (over its budget), the refusal, never the victim's session or its id."""
    victim = _factory(database, tenant).sessions()
    theirs = victim.submit(_member(tenant), tenant, _request(1))
    victim.submit(_member(tenant), tenant, _request(2))  # a key the attacker is refused with
    hostile = f"hostile-{uuid.uuid4().hex[:8]}"
    attacker = _factory(database, hostile, budget=100).sessions()

    own = attacker.submit(_member(hostile), hostile, _request(1))
    assert own.id != theirs.id and own.tenant_id == hostile
    with tenant_scope(hostile), unit_of_work(database) as uow:
        uow.usage.record(own.created_at.date(), tokens_in=100)
    with pytest.raises(TokenBudgetExceeded) as refused:
        attacker.submit(_member(hostile), hostile, _request(2))
    assert theirs.id not in str(refused.value)
