"""Versioned state changes: one conditional UPDATE plus its event row, or a typed error and nothing.

The stale-version tests hold two transactions open at once on two `Database` instances (two real
connections): both read version v, the first commits its change, the second's conditional UPDATE
then matches no row. The loser catches `ConcurrentModification` *inside* its transaction and lets
that transaction commit, which shows the failed call itself wrote nothing (no event row, no bump),
rather than relying on a rollback to hide it.

On PostgreSQL, real races: threads released by a barrier try the same transition at once, and a
deterministic variant where the second UPDATE is seen blocked on the first one's row lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine

from domain.agent import Agent, AgentPerformance
from domain.clock import utcnow
from domain.errors import ConcurrentModification
from domain.fine_tuning import FineTuningJob, FineTuningStatus
from domain.session import Session, SessionStatus
from domain.task import Task, TaskStatus
from resources.database import Database, tenant_scope, unit_of_work
from resources.database.schema import SessionEventRow, StatusEventRow
from resources.database.unit_of_work import UnitOfWork
from tests.integration.database.support import new_tenant, run_as

THREAD_TIMEOUT_SECONDS = 30


@pytest.fixture(scope="module")
def second_database(database: Database) -> Iterator[Database]:
    """Another `Database` (own engine, own connections) on the same database as `database`."""
    other = Database(database.url)
    try:
        yield other
    finally:
        other.dispose()


# --- the three versioned entities, driven the same way ----------------------------------------


@dataclass(frozen=True)
class Entity:
    """How to create, load, transition and count the status events of one versioned entity."""

    kind: str
    create: Callable[[UnitOfWork, str], Any]
    load: Callable[[UnitOfWork, str], Any]
    transition: Callable[[UnitOfWork, Any], None]  # first move from the created state
    status_events: Callable[[UnitOfWork, str], int]
    moved_to: str


def _session_events(uow: UnitOfWork, session_id: str) -> int:
    query = select(func.count()).where(
        SessionEventRow.session_id == session_id,
        SessionEventRow.event_type == "session.status_changed",
    )
    return int(uow.session.scalar(query) or 0)


def _status_events(kind: str) -> Callable[[UnitOfWork, str], int]:
    def count(uow: UnitOfWork, entity_id: str) -> int:
        query = select(func.count()).where(
            StatusEventRow.entity_kind == kind, StatusEventRow.entity_id == entity_id
        )
        return int(uow.session.scalar(query) or 0)

    return count


def _transition_session(uow: UnitOfWork, session: Session) -> None:
    uow.sessions.save_transition(session, session.transition_to(SessionStatus.RUNNING, "go"))


def _transition_task(uow: UnitOfWork, task: Task) -> None:
    uow.tasks.save_transition(task, task.transition_to(TaskStatus.READY, "go"))


def _transition_job(uow: UnitOfWork, job: FineTuningJob) -> None:
    uow.fine_tuning_jobs.save_transition(job, job.transition_to(FineTuningStatus.QUEUED, "go"))


ENTITIES = [
    Entity(
        kind="session",
        create=lambda uow, t: uow.sessions.add(
            Session(tenant_id=t, title="Race", initial_prompt="Go.")
        ),
        load=lambda uow, entity_id: uow.sessions.get(entity_id),
        transition=_transition_session,
        status_events=_session_events,
        moved_to="RUNNING",
    ),
    Entity(
        kind="task",
        create=lambda uow, t: uow.tasks.add(Task(tenant_id=t, title="Race")),
        load=lambda uow, entity_id: uow.tasks.get(entity_id),
        transition=_transition_task,
        status_events=_status_events("task"),
        moved_to="READY",
    ),
    Entity(
        kind="fine_tuning_job",
        create=lambda uow, t: uow.fine_tuning_jobs.add(
            FineTuningJob(tenant_id=t, base_model="qwen/coder")
        ),
        load=lambda uow, entity_id: uow.fine_tuning_jobs.get(entity_id),
        transition=_transition_job,
        status_events=_status_events("fine_tuning_job"),
        moved_to="QUEUED",
    ),
]
ENTITY_IDS = [entity.kind for entity in ENTITIES]


def _create(db: Database, tenant: str, entity: Entity) -> str:
    return run_as(db, tenant, lambda uow: entity.create(uow, tenant)).id


def _state(db: Database, tenant: str, entity: Entity, entity_id: str) -> tuple[str, int, int]:
    """(status, version, status-event rows) as committed."""

    def read(uow: UnitOfWork) -> tuple[str, int, int]:
        record = entity.load(uow, entity_id)
        return record.status.value, record.version, entity.status_events(uow, entity_id)

    return run_as(db, tenant, read)


# --- stale version, two connections, both backends --------------------------------------------


@pytest.mark.parametrize("entity", ENTITIES, ids=ENTITY_IDS)
def test_stale_transition_fails_typed_and_writes_nothing(
    database: Database, second_database: Database, tenant: str, entity: Entity
) -> None:
    entity_id = _create(database, tenant, entity)
    _, version, events_before = _state(database, tenant, entity, entity_id)

    with tenant_scope(tenant), unit_of_work(second_database) as loser:
        stale = entity.load(loser, entity_id)
        with unit_of_work(database) as winner:
            fresh = entity.load(winner, entity_id)
            assert fresh.version == stale.version == version
            entity.transition(winner, fresh)
        # the winner committed; the loser's transaction is still open, holding version v
        with pytest.raises(ConcurrentModification) as raised:
            entity.transition(loser, stale)
        assert raised.value.expected_version == version
        assert stale.version == version  # the in-memory version is not bumped either
    # the loser's transaction committed too: whatever the failed call wrote would be visible now
    assert _state(database, tenant, entity, entity_id) == (
        entity.moved_to,
        version + 1,
        events_before + 1,
    )


@pytest.mark.parametrize("entity", ENTITIES, ids=ENTITY_IDS)
def test_a_transition_bumps_the_version_and_writes_its_event_in_one_transaction(
    database: Database, tenant: str, entity: Entity
) -> None:
    entity_id = _create(database, tenant, entity)
    _, version, events_before = _state(database, tenant, entity, entity_id)

    class Abort(Exception):
        pass

    with pytest.raises(Abort), tenant_scope(tenant), unit_of_work(database) as uow:
        entity.transition(uow, entity.load(uow, entity_id))
        raise Abort  # a failure later in the same unit of work
    assert _state(database, tenant, entity, entity_id)[1:] == (version, events_before)

    run_as(database, tenant, lambda uow: entity.transition(uow, entity.load(uow, entity_id)))
    assert _state(database, tenant, entity, entity_id) == (
        entity.moved_to,
        version + 1,
        events_before + 1,
    )


def test_stale_session_save_without_status_change_fails(
    database: Database, second_database: Database, tenant: str
) -> None:
    session_id = _create(database, tenant, ENTITIES[0])
    with tenant_scope(tenant), unit_of_work(second_database) as loser:
        stale = loser.sessions.get(session_id)
        with unit_of_work(database) as winner:
            fresh = winner.sessions.get(session_id)
            fresh.metrics = fresh.metrics.add_usage(tokens_in=10)
            winner.sessions.save(fresh)
        stale.metrics = stale.metrics.add_usage(tokens_in=99)
        with pytest.raises(ConcurrentModification):
            loser.sessions.save(stale)
    saved = run_as(database, tenant, lambda uow: uow.sessions.get(session_id))
    assert (saved.metrics.tokens_in, saved.version) == (10, 2)


def test_stale_job_save_without_status_change_fails(
    database: Database, second_database: Database, tenant: str
) -> None:
    job_id = _create(database, tenant, ENTITIES[2])
    with tenant_scope(tenant), unit_of_work(second_database) as loser:
        stale = loser.fine_tuning_jobs.get(job_id)
        with unit_of_work(database) as winner:
            fresh = winner.fine_tuning_jobs.get(job_id)
            fresh.provider_job_id = "ftjob-winner"
            winner.fine_tuning_jobs.save(fresh)
        stale.provider_job_id = "ftjob-loser"
        with pytest.raises(ConcurrentModification):
            loser.fine_tuning_jobs.save(stale)
    saved = run_as(database, tenant, lambda uow: uow.fine_tuning_jobs.get(job_id))
    assert (saved.provider_job_id, saved.version) == ("ftjob-winner", 2)


def test_stale_agent_save_fails(database: Database, second_database: Database, tenant: str) -> None:
    agent = run_as(
        database,
        tenant,
        lambda uow: uow.agents.add(
            Agent(tenant_id=tenant, name="a1", server_url="http://127.0.0.1:4096")
        ),
    )
    with tenant_scope(tenant), unit_of_work(second_database) as loser:
        stale = loser.agents.get(agent.id)
        with unit_of_work(database) as winner:
            fresh = winner.agents.get(agent.id)
            fresh.performance = AgentPerformance(tasks_total=1, tasks_succeeded=1)
            winner.agents.save(fresh)
        stale.capacity = 7
        with pytest.raises(ConcurrentModification):
            loser.agents.save(stale)
    saved = run_as(database, tenant, lambda uow: uow.agents.get(agent.id))
    assert (saved.capacity, saved.performance.tasks_total, saved.version) == (5, 1, 2)


def test_transition_from_a_status_the_row_no_longer_has_fails(
    database: Database, tenant: str
) -> None:
    """Same version but another status (a bypassing writer) is refused too: both are checked."""
    session_id = _create(database, tenant, ENTITIES[0])
    stale = run_as(database, tenant, lambda uow: uow.sessions.get(session_id))
    run_as(database, tenant, lambda uow: _transition_session(uow, uow.sessions.get(session_id)))
    stale.version = 2  # the right version, but the session is RUNNING now, not PENDING
    with pytest.raises(ConcurrentModification) as raised:
        run_as(database, tenant, lambda uow: _transition_session(uow, stale))
    assert raised.value.expected_status == "PENDING"
    assert _state(database, tenant, ENTITIES[0], session_id) == ("RUNNING", 2, 1)


# --- real races on PostgreSQL -----------------------------------------------------------------


@pytest.fixture(scope="module")
def pg_second_database(pg_database: Database) -> Iterator[Database]:
    other = Database(pg_database.url)
    try:
        yield other
    finally:
        other.dispose()


def _run_threads(targets: list[Callable[[], None]]) -> None:
    threads = [threading.Thread(target=target, daemon=True) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(THREAD_TIMEOUT_SECONDS)
        assert not thread.is_alive(), "a racing thread hung"


@pytest.mark.parametrize("entity", ENTITIES, ids=ENTITY_IDS)
def test_racing_transitions_exactly_one_wins(
    pg_database: Database, pg_second_database: Database, entity: Entity
) -> None:
    tenant = new_tenant(pg_database)
    rounds = 5
    entity_ids = [_create(pg_database, tenant, entity) for _ in range(rounds)]

    for entity_id in entity_ids:
        outcomes = _race(
            [pg_database, pg_second_database],
            tenant,
            lambda uow, entity_id=entity_id: entity.load(uow, entity_id),
            entity.transition,
        )
        assert sorted(outcomes) == ["lost", "won"], entity_id
        assert _state(pg_database, tenant, entity, entity_id) == (entity.moved_to, 2, 1)


def _race(
    databases: list[Database],
    tenant: str,
    load: Callable[[UnitOfWork], Any],
    change: Callable[[UnitOfWork, Any], None],
) -> list[str]:
    """One thread per database: each loads in its own open transaction, all wait at a barrier,
    then all try `change` at once. Returns each thread's outcome: won, lost or error."""
    barrier = threading.Barrier(len(databases), timeout=THREAD_TIMEOUT_SECONDS)
    outcomes: list[str] = []
    lock = threading.Lock()

    def contender(db: Database) -> None:
        try:
            with tenant_scope(tenant), unit_of_work(db) as uow:
                record = load(uow)
                barrier.wait()  # every contender holds the same version in an open transaction
                change(uow, record)
            outcome = "won"
        except ConcurrentModification:
            outcome = "lost"
        except Exception as error:  # reported by the caller's assertion
            outcome = f"error: {type(error).__name__}: {error}"
        with lock:
            outcomes.append(outcome)

    _run_threads([lambda db=db: contender(db) for db in databases])
    return outcomes


def _backends_waiting_on_a_lock(admin: Engine) -> int:
    with admin.connect() as connection:
        return int(
            connection.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
        )


@pytest.mark.parametrize("entity", ENTITIES, ids=ENTITY_IDS)
def test_a_change_blocked_behind_an_open_one_fails_once_that_one_commits(
    pg_database: Database, pg_second_database: Database, pg_admin_engine: Engine, entity: Entity
) -> None:
    """The second UPDATE waits on the first's row lock, then re-checks the version and fails."""
    tenant = new_tenant(pg_database)
    entity_id = _create(pg_database, tenant, entity)
    first_updated = threading.Event()
    release_first = threading.Event()
    second_loaded = threading.Event()
    outcomes: dict[str, str] = {}

    def first() -> None:
        try:
            with tenant_scope(tenant), unit_of_work(pg_database) as uow:
                record = entity.load(uow, entity_id)
                second_loaded.wait(THREAD_TIMEOUT_SECONDS)
                entity.transition(uow, record)
                first_updated.set()
                release_first.wait(THREAD_TIMEOUT_SECONDS)  # hold the row lock, uncommitted
            outcomes["first"] = "won"
        except Exception as error:
            outcomes["first"] = f"error: {type(error).__name__}: {error}"
            first_updated.set()

    def second() -> None:
        try:
            with tenant_scope(tenant), unit_of_work(pg_second_database) as uow:
                record = entity.load(uow, entity_id)
                second_loaded.set()
                first_updated.wait(THREAD_TIMEOUT_SECONDS)
                entity.transition(uow, record)  # blocks until `first` commits
            outcomes["second"] = "won"
        except ConcurrentModification:
            outcomes["second"] = "lost"
        except Exception as error:
            outcomes["second"] = f"error: {type(error).__name__}: {error}"

    threads = [threading.Thread(target=f, daemon=True) for f in (first, second)]
    for thread in threads:
        thread.start()
    try:
        assert first_updated.wait(THREAD_TIMEOUT_SECONDS)
        deadline = time.monotonic() + THREAD_TIMEOUT_SECONDS
        while _backends_waiting_on_a_lock(pg_admin_engine) < 1:
            assert time.monotonic() < deadline, "the second UPDATE never waited on the row lock"
            time.sleep(0.02)
        assert "second" not in outcomes  # still blocked while the first is uncommitted
    finally:
        release_first.set()
        for thread in threads:
            thread.join(THREAD_TIMEOUT_SECONDS)
    assert outcomes == {"first": "won", "second": "lost"}
    assert _state(pg_database, tenant, entity, entity_id) == (entity.moved_to, 2, 1)


def test_finishes_on_one_agent_queue_on_its_row_and_both_count(
    pg_database: Database, pg_second_database: Database, pg_admin_engine: Engine
) -> None:
    """Two waves recording a finished session on the same agent at once: the second waits for
    the first's row lock (get_for_update), then reads the new version, so neither update is lost
    or refused."""
    tenant = new_tenant(pg_database)
    agent = run_as(
        pg_database,
        tenant,
        lambda uow: uow.agents.add(
            Agent(tenant_id=tenant, name="shared", server_url="http://127.0.0.1:4096")
        ),
    )
    first_locked = threading.Event()
    release_first = threading.Event()
    outcomes: dict[str, str] = {}

    def record_finish(db: Database, name: str, hold: bool) -> None:
        try:
            with tenant_scope(tenant), unit_of_work(db) as uow:
                current = uow.agents.get_for_update(agent.id)
                if hold:
                    first_locked.set()
                    release_first.wait(THREAD_TIMEOUT_SECONDS)
                current.performance = current.performance.record(
                    SessionStatus.COMPLETED, at=utcnow()
                )
                uow.agents.save(current)
            outcomes[name] = "saved"
        except Exception as error:
            outcomes[name] = f"error: {type(error).__name__}: {error}"

    first = threading.Thread(target=record_finish, args=(pg_database, "first", True))
    second = threading.Thread(target=record_finish, args=(pg_second_database, "second", False))
    first.start()
    assert first_locked.wait(THREAD_TIMEOUT_SECONDS)
    second.start()
    deadline = time.monotonic() + THREAD_TIMEOUT_SECONDS
    while _backends_waiting_on_a_lock(pg_admin_engine) == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    waited = _backends_waiting_on_a_lock(pg_admin_engine)
    release_first.set()
    for thread in (first, second):
        thread.join(THREAD_TIMEOUT_SECONDS)
    assert waited == 1, "the second reader did not wait for the first's row lock"
    assert outcomes == {"first": "saved", "second": "saved"}
    saved = run_as(pg_database, tenant, lambda uow: uow.agents.get(agent.id))
    assert (saved.performance.tasks_total, saved.version) == (2, 3)
