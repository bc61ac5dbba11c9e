"""A sensor tick costs O(tenants with work), not O(tenants): idle tenants are never visited.

The dispatch, retry, settlement and webhook ticks first ask the database which tenants have work
(one query) and visit only those. Shown by what a tick returns (the tenants it visited) and by
the SQL statements it runs, counted on the engine: the same for 5 idle tenants as for 45. Each
test gets an empty database, on SQLite and on PostgreSQL (where the application role runs under
row-level security).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import dagster as dg
import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from domain.agent import Agent
from domain.caller import Caller
from domain.clock import utcnow
from domain.decomposition import SubtaskSpec
from domain.session import Session, SessionStatus
from domain.tenant import Tenant
from domain.webhook import WebhookEndpoint
from orchestrator_defs.sensor_evaluation import sensor_context
from resources.database import Database, tenant_scope, unit_of_work
from resources.database_resource import DatabaseResource
from resources.opencode.resource import OpenCodeResource
from resources.redis.resource import RedisResource
from resources.supervision_config import SupervisionConfig
from sensors.agent_health import agent_health_sensor
from sensors.dispatch import dispatch_sensor, dispatch_tick
from sensors.retry import retry_sensor, retry_tick
from sensors.settlement import settle_tick
from sensors.webhooks import webhook_tick
from services.factory import ServiceFactory
from services.request_settlement import CoordinationService
from services.session_service import SessionService, SubmitSession
from services.waves import TENANT_TAG

_S = SessionStatus
SUPERVISION = SupervisionConfig()
NO_LIVE_WAVES: set[str] = set()


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest) -> Iterator[Database]:
    if request.param == "sqlite":
        url = request.getfixturevalue("migrated_sqlite_url")
    else:
        url = request.getfixturevalue("migrated_postgres_copy")
    database = Database(url)
    yield database
    database.dispose()


def _tenants(database: Database, count: int) -> list[str]:
    slugs = sorted(f"t-{uuid.uuid4().hex[:10]}" for _ in range(count))
    with unit_of_work(database) as uow:
        for slug in slugs:
            uow.tenants.add(Tenant(slug=slug, name=slug, max_concurrent_sessions=50))
    return slugs


def _add(database: Database, tenant: str, status: SessionStatus, **fields: Any) -> str:
    session = Session(tenant_id=tenant, title="work", initial_prompt="Do it.", status=status)
    session = session.model_copy(update=fields)
    with tenant_scope(tenant), unit_of_work(database) as uow:
        uow.sessions.add(session)
    return session.id


def _idle_tenants(database: Database, count: int) -> list[str]:
    """Tenants with history but nothing to do: finished, supervised or out of retries."""
    tenants = _tenants(database, count)
    later = utcnow() + timedelta(minutes=10)
    for number, tenant in enumerate(tenants):
        if number % 3 == 0:
            _add(database, tenant, _S.COMPLETED)
        elif number % 3 == 1:
            _add(database, tenant, _S.RUNNING, lease_owner="wave-1", lease_expires_at=later)
        else:
            _add(database, tenant, _S.FAILED, retry_count=3, max_retries=3)
    return tenants


@contextmanager
def _statements(database: Database) -> Iterator[list[str]]:
    """The SQL statements the engine runs inside the block."""
    executed: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        executed.append(statement)

    event.listen(database.engine, "before_cursor_execute", record)
    try:
        yield executed
    finally:
        event.remove(database.engine, "before_cursor_execute", record)


def _dispatch(database: Database) -> Any:
    return dispatch_tick(ServiceFactory(database), SUPERVISION, lambda: NO_LIVE_WAVES)


def _retry(database: Database) -> Any:
    return retry_tick(SessionService(database), database)


def test_a_dispatch_tick_visits_only_the_tenants_with_work_and_claims_their_due_sessions(
    database: Database,
) -> None:
    _idle_tenants(database, 12)
    pending, unsupervised = _tenants(database, 2)
    due = [_add(database, pending, _S.PENDING) for _ in range(3)]
    later = utcnow() + timedelta(minutes=10)
    _add(database, pending, _S.PENDING, next_attempt_at=later)  # in its backoff: not yet
    expired = utcnow() - timedelta(seconds=1)
    orphan = _add(database, unsupervised, _S.RUNNING, lease_owner="gone", lease_expires_at=expired)

    tick = _dispatch(database)

    assert tick.visited == sorted([pending, unsupervised])
    by_tenant = {wave.tenant_id: sorted(wave.session_ids) for wave in tick.waves}
    assert by_tenant == {pending: sorted(due), unsupervised: [orphan]}
    assert _dispatch(database).visited == []  # claimed and leased: nothing left to do


def test_a_tick_out_of_budget_leaves_the_other_tenants_to_the_next_ticks_in_turn(
    database: Database,
) -> None:
    """A spent budget (0 s) still forms one wave per tick: the work advances tenant by tenant."""
    a, b, c = _tenants(database, 3)
    sessions = {
        tenant: {_add(database, tenant, _S.PENDING) for _ in range(2)} for tenant in (a, b, c)
    }
    one_at_a_time = SupervisionConfig(wave_size=1)
    ticks, cursor = [], None
    for _ in range(7):
        tick = dispatch_tick(
            ServiceFactory(database),
            one_at_a_time,
            lambda: NO_LIVE_WAVES,
            cursor=cursor,
            budget_seconds=0,
        )
        ticks.append(tick)
        cursor = tick.cursor
    assert [tick.visited for tick in ticks] == [[a], [b], [c], [a], [b], [c], []]
    assert [len(tick.waves) for tick in ticks] == [1, 1, 1, 1, 1, 1, 0]
    for tenant, ids in sessions.items():
        claimed = {
            i for t in ticks for w in t.waves if w.tenant_id == tenant for i in w.session_ids
        }
        assert claimed == ids


def test_an_idle_dispatch_tick_runs_the_same_statements_for_5_idle_tenants_as_for_45(
    database: Database,
) -> None:
    _idle_tenants(database, 5)
    with _statements(database) as few:
        assert _dispatch(database).visited == []
    _idle_tenants(database, 40)
    with _statements(database) as many:
        assert _dispatch(database).visited == []
    assert len(many) == len(few)


def test_a_busy_dispatch_tick_runs_no_more_statements_when_idle_tenants_are_added(
    database: Database,
) -> None:
    def statements_for_two_busy_tenants() -> int:
        for tenant in _tenants(database, 2):
            _add(database, tenant, _S.PENDING)
        with _statements(database) as executed:
            assert len(_dispatch(database).visited) == 2
        return len(executed)

    _idle_tenants(database, 5)
    few = statements_for_two_busy_tenants()
    _idle_tenants(database, 40)
    assert statements_for_two_busy_tenants() == few


def test_a_retry_tick_visits_only_the_tenants_with_retries_due_and_sends_them_back(
    database: Database,
) -> None:
    _idle_tenants(database, 12)
    (failed,) = _tenants(database, 1)
    retried = _add(database, failed, _S.TIMEOUT, retry_count=0, max_retries=2)

    tick = _retry(database)

    assert tick.visited == [failed]
    assert [session.id for session in tick.retried] == [retried]
    with tenant_scope(failed), unit_of_work(database) as uow:
        assert uow.sessions.get(retried).status is _S.PENDING
    assert _retry(database).visited == []


def test_an_idle_retry_tick_runs_the_same_statements_for_5_idle_tenants_as_for_45(
    database: Database,
) -> None:
    _idle_tenants(database, 5)
    with _statements(database) as few:
        assert _retry(database).visited == []
    _idle_tenants(database, 40)
    with _statements(database) as many:
        assert _retry(database).visited == []
    assert len(many) == len(few)


def test_a_settle_tick_visits_only_the_tenants_with_a_decomposed_request_in_flight(
    database: Database,
) -> None:
    _idle_tenants(database, 12)
    decomposed, cancelled = _tenants(database, 2)
    service = SessionService(database)
    subtasks = [SubtaskSpec(title="one", prompt="Do one."), SubtaskSpec(title="two", prompt="2.")]
    for tenant in (decomposed, cancelled):
        request = SubmitSession(title="both", prompt="Do both.", subtasks=subtasks)
        service.submit(Caller.operator(), tenant, request)
    [parent] = [s for s in service.list(Caller.operator(), cancelled) if s.parent_id is None]
    service.cancel(
        Caller.operator(), cancelled, parent.id
    )  # its children with it: nothing left to settle there

    tick = settle_tick(CoordinationService(database), database)

    assert tick.visited == [decomposed]
    assert tick.settled == []  # its subtasks have not run yet


def _resources(database: Database) -> dict[str, Any]:
    return {
        "database": DatabaseResource(url=database.url.render_as_string(hide_password=False)),
        "supervision": SUPERVISION,
        "redis": RedisResource(url=None),
    }


def test_the_sensors_launch_waves_for_the_tenants_with_work_only(database: Database) -> None:
    _idle_tenants(database, 6)
    busy, failing = _tenants(database, 2)
    due = _add(database, busy, _S.PENDING)
    _add(database, failing, _S.FAILED, retry_count=0, max_retries=1)
    with dg.instance_for_test() as instance:
        with sensor_context(instance, _resources(database)) as context:
            dispatched = dispatch_sensor.evaluate_tick(context)
        with sensor_context(instance, _resources(database)) as context:
            retried = retry_sensor.evaluate_tick(context)
    requests = dispatched.run_requests or []
    assert [request.tags[TENANT_TAG] for request in requests] == [busy]
    assert requests[0].run_config["ops"]["supervise_wave"]["config"]["session_ids"] == [due]
    assert retried.skip_message is not None
    assert "1 sessions sent back to PENDING" in retried.skip_message
    assert "across 1 tenants with a retry left" in retried.skip_message


def _webhook_due(database: Database, tenant: str) -> None:
    """A webhook of the tenant's, and a delivery due for it (a session's state change)."""
    with tenant_scope(tenant), unit_of_work(database) as uow:
        # An address the guard refuses (loopback): the attempt fails at once, nothing is sent.
        uow.webhooks.add(
            WebhookEndpoint(tenant_id=tenant, url="http://127.0.0.1:9/h", events=["*"]), "x"
        )
        session = uow.sessions.add(Session(tenant_id=tenant, title="w", initial_prompt="Do."))
        uow.sessions.save_transition(session, session.transition_to(_S.CANCELLED))


def _webhooks(database: Database) -> Any:
    return webhook_tick(ServiceFactory(database).webhooks(), database)


def test_a_webhook_tick_visits_only_the_tenants_with_a_delivery_due(database: Database) -> None:
    _idle_tenants(database, 12)
    (hooked,) = _tenants(database, 1)
    _webhook_due(database, hooked)

    tick = _webhooks(database)

    assert tick.visited == [hooked]
    assert tick.summary == [f"{hooked}: 0/1 delivered"]  # refused: tried again later
    assert _webhooks(database).visited == []  # its next attempt is not due yet


def test_an_idle_webhook_tick_runs_the_same_statements_for_5_idle_tenants_as_for_45(
    database: Database,
) -> None:
    _idle_tenants(database, 5)
    with _statements(database) as few:
        assert _webhooks(database).visited == []
    _idle_tenants(database, 40)
    with _statements(database) as many:
        assert _webhooks(database).visited == []
    assert len(many) == len(few)


def _health(database: Database) -> str:
    """One agent-health tick (as the daemon evaluates it) and its message."""
    resources = {**_resources(database), "opencode": OpenCodeResource(connect_timeout_seconds=1)}
    with dg.instance_for_test() as instance, sensor_context(instance, resources) as context:
        return agent_health_sensor.evaluate_tick(context).skip_message or ""


@contextmanager
def _statements_of_every_engine(database: Database) -> Iterator[list[str]]:
    """The sensor builds its own engine each tick: count the statements of every engine on the
    application database (not those of the test's Dagster instance, whose own storage reads vary
    from tick to tick)."""
    executed: list[str] = []
    ours = database.engine.url

    def record(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        url = conn.engine.url
        if (url.host, url.port, url.database) == (ours.host, ours.port, ours.database):
            executed.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield executed
    finally:
        event.remove(Engine, "before_cursor_execute", record)


def test_an_agent_health_tick_visits_only_the_tenants_with_an_agent_to_probe(
    database: Database,
) -> None:
    _idle_tenants(database, 5)
    (served,) = _tenants(database, 1)
    with tenant_scope(served), unit_of_work(database) as uow:  # nothing listens there
        uow.agents.add(Agent(tenant_id=served, name="gone", server_url="http://127.0.0.1:9"))
    with _statements_of_every_engine(database) as few:
        assert _health(database) == f"{served}: 0/1 up"
    _idle_tenants(database, 40)
    with _statements_of_every_engine(database) as many:
        assert _health(database) == f"{served}: 0/1 up"
    assert len(many) == len(few)
