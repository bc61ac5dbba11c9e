"""Tenant isolation through the repositories, on SQLite and on PostgreSQL.

Two tenants, A and B, are seeded with one record of every kind. Then every public method of every
tenant-scoped repository is called as B on A's records: reads answer `NotFound` or leave A's rows
out, writes to A's records answer `NotFound` (and A's data is unchanged afterwards), a record
stamped with A's tenant is refused with `TenantMismatch`, and with no tenant set every method
raises `TenantNotSet`. A is seeded once per backend and shared by the tests, which each end by
showing it is still as seeded (see `tenant_a`); B is new for every test.

The tables below are checked against the repositories by introspection: a public method added
later without an isolation case (and a no-tenant call) fails `test_every_public_method_is_covered`.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import pkgutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session as OrmSession

import resources.database.repositories as repositories_package
from domain.agent import Agent
from domain.checkpoint import Checkpoint
from domain.clock import utcnow
from domain.code_repository import CodeRepository
from domain.errors import (
    ConcurrentModification,
    InvalidSetting,
    NotFound,
    ServerInUse,
    TenantMismatch,
    TenantNotSet,
)
from domain.evaluation import Evaluation
from domain.external_agent import hash_agent_token
from domain.fine_tuning import FineTuningJob, FineTuningStatus
from domain.promotion import ModelPromotion
from domain.runtime import Runtime
from domain.session import Session, SessionStatus
from domain.task import Task, TaskDependency, TaskStatus
from domain.tenant import Role, User
from domain.webhook import WebhookEndpoint
from domain.workspace import TenantWorkspace
from resources.database import Database, NewEvent
from resources.database.repositories.base import TenantScopedRepository
from resources.database.repositories.region_replica import SessionShipment
from resources.database.schema import TENANT_TABLES, Base
from resources.database.unit_of_work import UnitOfWork
from tests.integration.database.support import (
    FAR_FUTURE,
    IDEMPOTENCY_KEY,
    SHARED_HOST,
    SHARED_SERVER,
    Seed,
    new_tenant,
    run_as,
    seed_tenant,
)

Call = Callable[[UnitOfWork, Seed, Seed], Any]  # (unit of work as B, seed A, seed B)


# --- expectations -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One attempt, as tenant B, to reach tenant A's data through `method`."""

    method: str  # "Repository.method"
    label: str
    call: Call
    raises: type[Exception] | None = None
    check: Callable[[Any, Seed, Seed], None] | None = None  # on the result when nothing raised

    @property
    def id(self) -> str:
        return f"{self.method}:{self.label}"


def _copy(record: Any) -> Any:
    return record.model_copy(deep=True)


def _ids(records: Iterable[Any]) -> set[str]:
    return {record.id for record in records}


def only_b(*a_fields: str) -> Callable[[Any, Seed, Seed], None]:
    """The listing holds B's records only: none of A's (named by `a_fields` of seed A)."""

    def check(result: list[Any], a: Seed, b: Seed) -> None:
        assert result, "B's own records should be listed"
        assert {record.tenant_id for record in result} == {b.tenant}
        assert _ids(result).isdisjoint({getattr(a, field).id for field in a_fields})

    return check


def _is(result: Any, expected: Any) -> None:
    assert result is expected


def equals(expected: Callable[[Seed], Any]) -> Callable[[Any, Seed, Seed], None]:
    def check(result: Any, a: Seed, b: Seed) -> None:
        assert result == expected(b)

    return check


def _same(found: Any, expected: Any) -> None:
    assert found == expected


def _at_most(found: int, bound: int) -> None:
    assert found <= bound


def _no_seq_of(seqs: dict[str, int], a: Seed) -> None:
    assert seqs.get(a.session.id, 0) == 0


def _events_of(result: tuple[list[tuple[int, Any]], set[str]], a: Seed) -> None:
    events, b_sessions = result
    assert events, "B's own events should be listed"
    assert {event.session_id for _, event in events} <= b_sessions
    assert a.session.id not in {event.session_id for _, event in events}


def _new_session(tenant: str, **fields: Any) -> Session:
    return Session(tenant_id=tenant, title="Intruder", initial_prompt="x", **fields)


def _record_b_usage(uow: UnitOfWork, a: Seed, b: Seed) -> int:
    uow.usage.record(a.usage_day, tokens_in=7)
    return uow.usage.tokens_since(a.usage_day)


def _submission_context_of(uow: UnitOfWork, a: Seed) -> tuple[str, int, str | None]:
    """As B, from A's usage day on."""
    found = uow.sessions.submission_context(a.usage_day)
    return found.tenant.slug, found.tokens_used, found.promotion_id


def _transitioned_session(a: Seed) -> tuple[Session, Any]:
    session = _copy(a.session)
    return session, session.transition_to(SessionStatus.PAUSED)


def _transitioned_task(a: Seed) -> tuple[Task, Any]:
    task = _copy(a.task)
    return task, task.transition_to(TaskStatus.ASSIGNED)


def _transitioned_job(a: Seed) -> tuple[FineTuningJob, Any]:
    job = _copy(a.job)
    return job, job.transition_to(FineTuningStatus.RUNNING)


def _b_task_moved_to_a_session(uow: UnitOfWork, a: Seed, b: Seed) -> None:
    task = _copy(b.subtask)
    event = task.transition_to(TaskStatus.ASSIGNED)
    task.session_id = a.session.id
    uow.tasks.save_transition(task, event)


def _saved_agent(uow: UnitOfWork, a: Seed, b: Seed) -> None:
    agent = _copy(a.agent)
    agent.capacity = 9
    uow.agents.save(agent)


def _saved_session(uow: UnitOfWork, a: Seed, b: Seed) -> None:
    session = _copy(a.session)
    session.result = {"stolen": True}
    uow.sessions.save(session)


def _saved_job(uow: UnitOfWork, a: Seed, b: Seed) -> None:
    job = _copy(a.job)
    job.provider_job_id = "ftjob-intruder"
    uow.fine_tuning_jobs.save(job)


def _evaluation(tenant: str, job_id: str | None) -> Evaluation:
    return Evaluation(
        tenant_id=tenant,
        job_id=job_id,
        base_model="m/base",
        candidate_model="m/ft",
        items=1,
        base_score=0.5,
        candidate_score=0.5,
    )


def _repository(tenant: str, name: str) -> CodeRepository:
    return CodeRepository(tenant_id=tenant, name=name, url="file:///srv/intruder.git")


def _workspace(tenant: str, server_url: str, directory: str = "/wt/intruder") -> TenantWorkspace:
    return TenantWorkspace(tenant_id=tenant, server_url=server_url, directory=directory)


def _server_of(seed: Seed) -> str:
    """The server key the seed claimed (see `support.seed_tenant`)."""
    return f"{seed.tenant}.example:4096"


def _workspaces(records: Iterable[TenantWorkspace]) -> set[tuple[str, str, str]]:
    return {(w.tenant_id, w.server_url, w.directory) for w in records}


def _none_of_a(session_ids: set[str], a: Seed) -> None:
    assert a.session.id not in session_ids


def _nothing(shipped: list[Any]) -> None:
    assert shipped == []


def _shipment(tenant: str, session_id: str) -> SessionShipment:
    """A replicated row naming `session_id`, with a newer cursor than any real one."""
    row = {"id": session_id, "tenant_id": tenant, "last_event_seq": 10_000}
    return SessionShipment(row=row, events=[], after_seq=0)


def _posing_as(uow: UnitOfWork, b: Seed, session_id: str) -> SessionShipment:
    """B's own session row, complete, under another session's id: an upsert onto that row."""
    [own] = uow.region_replica.shipments({b.session.id: 0}, limit=0)
    row = {**own.row, "id": session_id, "last_event_seq": 10_000}
    return SessionShipment(row=row, events=[], after_seq=0)


CASES: list[Case] = [
    # users
    Case(
        "UserRepository.add",
        "record of A",
        lambda uow, a, b: uow.users.add(User(tenant_id=a.tenant, email="eve@example.com")),
        raises=TenantMismatch,
    ),
    Case("UserRepository.get", "A's user", lambda uow, a, b: uow.users.get(a.user.id), NotFound),
    Case(
        "UserRepository.get_by_email",
        "e-mail only A has",
        lambda uow, a, b: uow.users.get_by_email(a.own_user.email),
        NotFound,
    ),
    Case(
        "UserRepository.get_by_email",
        "e-mail both have",
        lambda uow, a, b: uow.users.get_by_email(a.user.email).id,
        check=equals(lambda b: b.user.id),
    ),
    Case(
        "UserRepository.save",
        "A's user",
        lambda uow, a, b: uow.users.save(a.user.model_copy(update={"role": Role.ADMIN})),
        NotFound,
    ),
    Case(
        "UserRepository.list",
        "B's users only",
        lambda uow, a, b: uow.users.list(),
        check=only_b("user", "own_user"),
    ),
    # api keys
    Case(
        "ApiKeyRepository.create",
        "for A's user",
        lambda uow, a, b: uow.api_keys.create("intruder", user_id=a.user.id),
        NotFound,
    ),
    Case(
        "ApiKeyRepository.authenticate",
        "A's key",
        lambda uow, a, b: uow.api_keys.authenticate(a.api_key_plaintext),
        NotFound,
    ),
    Case(
        "ApiKeyRepository.authenticate",
        "B's key still works",
        lambda uow, a, b: uow.api_keys.authenticate(b.api_key_plaintext).id,
        check=equals(lambda b: b.api_key.id),
    ),
    Case(
        "ApiKeyRepository.list",
        "B's keys only",
        lambda uow, a, b: uow.api_keys.list(),
        check=only_b("api_key"),
    ),
    Case(
        "ApiKeyRepository.revoke",
        "A's key",
        lambda uow, a, b: uow.api_keys.revoke(a.api_key.id),
        NotFound,
    ),
    # agents
    Case(
        "AgentRepository.add",
        "record of A",
        lambda uow, a, b: uow.agents.add(
            Agent(tenant_id=a.tenant, name="intruder", server_url="http://127.0.0.1:1")
        ),
        TenantMismatch,
    ),
    Case(
        "AgentRepository.get", "A's agent", lambda uow, a, b: uow.agents.get(a.agent.id), NotFound
    ),
    Case(
        "AgentRepository.get_for_update",
        "A's agent",
        lambda uow, a, b: uow.agents.get_for_update(a.agent.id),
        NotFound,
    ),
    Case(
        "AgentRepository.remove",
        "A's agent",
        lambda uow, a, b: uow.agents.remove(a.agent.id),
        NotFound,
    ),
    Case(
        "AgentRepository.list",
        "B's agents only",
        lambda uow, a, b: uow.agents.list(),
        check=only_b("agent"),
    ),
    Case(
        "AgentRepository.list",
        "active only",
        lambda uow, a, b: uow.agents.list(active_only=True),
        check=only_b("agent"),
    ),
    Case("AgentRepository.save", "A's agent", _saved_agent, NotFound),
    Case(
        "AgentRepository.by_token_hash",
        "A's agent's token",
        lambda uow, a, b: uow.agents.by_token_hash(hash_agent_token(a.agent_token)),
        NotFound,
    ),
    # webhooks
    Case(
        "WebhookRepository.add",
        "record of A",
        lambda uow, a, b: uow.webhooks.add(
            WebhookEndpoint(tenant_id=a.tenant, url="https://x.example/h"), "x"
        ),
        TenantMismatch,
    ),
    Case(
        "WebhookRepository.list",
        "B's webhooks only",
        lambda uow, a, b: uow.webhooks.list(),
        check=only_b("webhook"),
    ),
    Case(
        "WebhookRepository.get",
        "A's webhook",
        lambda uow, a, b: uow.webhooks.get(a.webhook.id),
        NotFound,
    ),
    Case(
        "WebhookRepository.sealed_secret",
        "A's webhook",
        lambda uow, a, b: uow.webhooks.sealed_secret(a.webhook.id),
        NotFound,
    ),
    Case(
        "WebhookRepository.remove",
        "A's webhook",
        lambda uow, a, b: uow.webhooks.remove(a.webhook.id),
        NotFound,
    ),
    Case(
        "WebhookRepository.deliveries",
        "A's webhook",
        lambda uow, a, b: uow.webhooks.deliveries(a.webhook.id, 10),
        NotFound,
    ),
    Case(
        "WebhookRepository.due",
        "B's deliveries only",
        lambda uow, a, b: uow.webhooks.due(FAR_FUTURE, 100),
        check=only_b("delivery"),
    ),
    Case(
        "WebhookRepository.prune_ended",
        "every delivery, whatever its age",
        lambda uow, a, b: uow.webhooks.prune_ended(FAR_FUTURE, 1000),
        check=lambda pruned, a, b: _is(pruned, 0),  # B's only one is pending; A's untouched
    ),
    Case(
        "WebhookRepository.postpone",
        "A's delivery",
        lambda uow, a, b: uow.webhooks.postpone(_copy(a.delivery), FAR_FUTURE),
        check=lambda result, a, b: _is(result, False),
    ),
    Case(
        "WebhookRepository.save",
        "A's delivery",
        lambda uow, a, b: uow.webhooks.save(_copy(a.delivery), a.delivery.next_attempt_at),
        ConcurrentModification,
    ),
    # sessions
    Case(
        "SessionRepository.add",
        "record of A",
        lambda uow, a, b: uow.sessions.add(_new_session(a.tenant)),
        TenantMismatch,
    ),
    Case(
        "SessionRepository.add",
        "child of A's session",
        lambda uow, a, b: uow.sessions.add(_new_session(b.tenant, parent_id=a.session.id)),
        NotFound,
    ),
    Case(
        "RegionReplicaRepository.session_heads",
        "A's sessions",
        lambda uow, a, b: set(uow.region_replica.session_heads()),
        check=lambda heads, a, b: _none_of_a(heads, a),
    ),
    Case(
        "RegionReplicaRepository.shipments",
        "A's session by id",
        lambda uow, a, b: uow.region_replica.shipments({a.session.id: 0}, limit=100),
        check=lambda shipped, a, b: _nothing(shipped),
    ),
    Case(
        "RegionReplicaRepository.apply",
        "a shipment of A's",
        lambda uow, a, b: uow.region_replica.apply([_shipment(a.tenant, a.session.id)]),
        TenantMismatch,
    ),
    Case(
        "RegionReplicaRepository.apply",
        "A's session id as B's",
        lambda uow, a, b: uow.region_replica.apply([_posing_as(uow, b, a.session.id)]),
        # PostgreSQL: row-level security refuses the upsert onto A's row; SQLite: no regions
        (DBAPIError, InvalidSetting),  # type: ignore[arg-type]
    ),
    Case(
        "SessionRepository.get",
        "A's session",
        lambda uow, a, b: uow.sessions.get(a.session.id),
        NotFound,
    ),
    Case(
        "SessionRepository.find_by_idempotency_key",
        "key both used",
        lambda uow, a, b: uow.sessions.find_by_idempotency_key(IDEMPOTENCY_KEY).id,
        check=equals(lambda b: b.session.id),
    ),
    Case(
        "SessionRepository.submission_context",
        "B's tenant, tokens and promotion",
        lambda uow, a, b: _submission_context_of(uow, a),
        check=equals(lambda b: (b.tenant, 150, b.promotion.id)),
    ),
    Case(
        "SessionRepository.list",
        "B's sessions only",
        lambda uow, a, b: uow.sessions.list(),
        check=only_b("session", "child_session", "coordinator", "abandoned_subtask"),
    ),
    Case(
        "SessionRepository.list",
        "children of A's session",
        lambda uow, a, b: uow.sessions.list(parent_id=a.session.id),
        check=equals(lambda b: []),
    ),
    Case(
        "SessionRepository.list",
        "by status",
        lambda uow, a, b: uow.sessions.list(statuses={SessionStatus.RUNNING}),
        check=only_b("session"),
    ),
    Case(
        "SessionRepository.count_active",
        "B's own count",
        lambda uow, a, b: uow.sessions.count_active(),
        check=equals(lambda b: b.active_sessions),
    ),
    Case(
        "SessionRepository.active_by_agent",
        "B's agents only",
        lambda uow, a, b: set(uow.sessions.active_by_agent()),
        check=equals(lambda b: set()),
    ),
    Case(
        "SessionRepository.due_pending",
        "B's pending sessions only",
        lambda uow, a, b: uow.sessions.due_pending(utcnow(), 100),
        check=only_b("child_session", "coordinator", "abandoned_subtask", "unroutable_session"),
    ),
    Case(
        "SessionRepository.coordinators",
        "B's coordinating parents only",
        lambda uow, a, b: uow.sessions.coordinators({SessionStatus.CANCELLED}),
        check=only_b("coordinator"),
    ),
    Case(
        "SessionRepository.abandoned_subtasks",
        "B's abandoned subtasks only",
        lambda uow, a, b: uow.sessions.abandoned_subtasks(),
        check=only_b("abandoned_subtask"),
    ),
    Case(
        "SessionRepository.unroutable",
        "B's set-aside sessions only",
        lambda uow, a, b: uow.sessions.unroutable(),
        check=only_b("unroutable_session"),
    ),
    Case(
        "SessionRepository.leased_by",
        "a lease owner name A might use",
        lambda uow, a, b: uow.sessions.leased_by("wave-1"),
        check=equals(lambda b: []),
    ),
    Case(
        "HistoryRetentionRepository.prune_expired",
        "B's expired history only (A's untouched: see the snapshot)",
        lambda uow, a, b: uow.history_retention.prune_expired(utcnow() + timedelta(days=3650)),
        check=lambda result, a, b: None,  # what counts is A's snapshot, unchanged
    ),
    Case(
        "SessionRepository.renew_leases",
        "a lease owner name A might use",
        lambda uow, a, b: uow.sessions.renew_leases("wave-1", utcnow()),
        check=equals(lambda b: set()),
    ),
    Case(
        "SessionRepository.with_expired_lease",
        "B's unsupervised running sessions only",
        lambda uow, a, b: uow.sessions.with_expired_lease(utcnow(), {SessionStatus.RUNNING}),
        check=only_b("session"),
    ),
    Case(
        "SessionRepository.save_transition",
        "A's session",
        lambda uow, a, b: uow.sessions.save_transition(*_transitioned_session(a)),
        NotFound,
    ),
    Case(
        "SessionRepository.save_transition_after",
        "A's session, events and a checkpoint before it",
        lambda uow, a, b: uow.sessions.save_transition_after(
            *_transitioned_session(a),
            [
                NewEvent("agent.message", {"x": 1}, utcnow()),
                NewEvent("agent.step", {"text": "planted"}, utcnow(), checkpoint=True),
            ],
        ),
        NotFound,
    ),
    Case("SessionRepository.save", "A's session", _saved_session, NotFound),
    Case(
        "SessionRepository.append_event",
        "to A's session",
        lambda uow, a, b: uow.sessions.append_event(a.session.id, "agent.message", {"x": 1}),
        NotFound,
    ),
    Case(
        "SessionRepository.events",
        "of A's session",
        lambda uow, a, b: uow.sessions.events(a.session.id),
        NotFound,
    ),
    Case(
        "SessionRepository.add_checkpoint",
        "to A's session",
        lambda uow, a, b: uow.sessions.add_checkpoint(a.session.id, Checkpoint(sequence=3)),
        NotFound,
    ),
    Case(
        "SessionRepository.append_events",
        "to A's session, a checkpoint with them",
        lambda uow, a, b: uow.sessions.append_events(
            a.session.id,
            [
                NewEvent("agent.message", {"x": 1}, utcnow()),
                NewEvent("agent.step", {"text": "planted"}, utcnow(), checkpoint=True),
            ],
        ),
        NotFound,
    ),
    Case(
        "SessionRepository.add_next_checkpoint",
        "to A's session",
        lambda uow, a, b: uow.sessions.add_next_checkpoint(a.session.id, {}, utcnow()),
        NotFound,
    ),
    Case(
        "SessionRepository.events_of_types",
        "of A's session",
        lambda uow, a, b: uow.sessions.events_of_types(a.session.id, ["agent.message"]),
        check=equals(lambda b: []),
    ),
    Case(
        "SessionRepository.latest_event_seq",
        "of A's session",
        lambda uow, a, b: uow.sessions.latest_event_seq(a.session.id),
        NotFound,
    ),
    Case(
        "SessionRepository.seqs_up_to",
        "of A's session",
        lambda uow, a, b: uow.sessions.seqs_up_to([a.session.id], 2**62),
        check=lambda result, a, b: _no_seq_of(result, a),
    ),
    Case(
        "SessionRepository.tenant_events",
        "B's events only",
        lambda uow, a, b: (uow.sessions.tenant_events(0, 100_000), _ids(uow.sessions.list())),
        check=lambda result, a, b: _events_of(result, a),
    ),
    Case(
        "SessionRepository.newest_event_id",
        "B's newest event",
        lambda uow, a, b: (
            uow.sessions.newest_event_id(),
            max((row_id for row_id, _ in uow.sessions.tenant_events(0, 100_000)), default=0),
        ),
        check=lambda result, a, b: _same(*result),
    ),
    Case(
        "SessionRepository.count_by_status",
        "B's sessions only",
        lambda uow, a, b: (sum(uow.sessions.count_by_status().values()), len(uow.sessions.list())),
        check=lambda result, a, b: _same(*result),
    ),
    Case(
        "SessionRepository.statistics",
        "B's sessions only",
        lambda uow, a, b: (
            sum(uow.sessions.statistics()["by_status"].values()),
            len(uow.sessions.list()),
        ),
        check=lambda result, a, b: _same(*result),
    ),
    Case(
        "SessionRepository.recent_durations",
        "B's ended sessions only",
        lambda uow, a, b: (
            len(uow.sessions.recent_durations(utcnow() - timedelta(days=3650))),
            len(uow.sessions.list()),
        ),
        check=lambda result, a, b: _at_most(*result),
    ),
    Case(
        "SessionRepository.checkpoints",
        "of A's session",
        lambda uow, a, b: uow.sessions.checkpoints(a.session.id),
        check=equals(lambda b: []),
    ),
    # tasks
    Case(
        "TaskRepository.add",
        "record of A",
        lambda uow, a, b: uow.tasks.add(Task(tenant_id=a.tenant, title="Intruder")),
        TenantMismatch,
    ),
    Case(
        "TaskRepository.add",
        "subtask of A's task",
        lambda uow, a, b: uow.tasks.add(
            Task(tenant_id=b.tenant, title="Intruder", parent_task_id=a.task.id, depth=1)
        ),
        NotFound,
    ),
    Case(
        "TaskRepository.add",
        "linked to A's session",
        lambda uow, a, b: uow.tasks.add(
            Task(tenant_id=b.tenant, title="Intruder", session_id=a.session.id)
        ),
        NotFound,
    ),
    Case("TaskRepository.get", "A's task", lambda uow, a, b: uow.tasks.get(a.task.id), NotFound),
    Case(
        "TaskRepository.list",
        "B's tasks only",
        lambda uow, a, b: uow.tasks.list(),
        check=only_b("task", "subtask"),
    ),
    Case(
        "TaskRepository.list",
        "subtasks of A's task",
        lambda uow, a, b: uow.tasks.list(parent_task_id=a.task.id),
        check=equals(lambda b: []),
    ),
    Case(
        "TaskRepository.list",
        "tasks of A's session",
        lambda uow, a, b: uow.tasks.list(session_id=a.session.id),
        check=equals(lambda b: []),
    ),
    Case(
        "TaskRepository.add_dependency",
        "B's task on A's task",
        lambda uow, a, b: uow.tasks.add_dependency(
            TaskDependency(task_id=b.task.id, depends_on_id=a.task.id)
        ),
        NotFound,
    ),
    Case(
        "TaskRepository.add_dependency",
        "between A's tasks",
        lambda uow, a, b: uow.tasks.add_dependency(
            TaskDependency(task_id=a.task.id, depends_on_id=a.subtask.id)
        ),
        NotFound,
    ),
    Case(
        "TaskRepository.dependencies",
        "of A's tasks",
        lambda uow, a, b: uow.tasks.dependencies([a.task.id, a.subtask.id]),
        check=equals(lambda b: []),
    ),
    Case(
        "TaskRepository.save_transition",
        "A's task",
        lambda uow, a, b: uow.tasks.save_transition(*_transitioned_task(a)),
        NotFound,
    ),
    Case(
        "TaskRepository.save_transition",
        "B's task moved onto A's session",
        _b_task_moved_to_a_session,
        NotFound,
    ),
    Case(
        "TaskRepository.history",
        "of A's task",
        lambda uow, a, b: uow.tasks.history(a.task.id),
        NotFound,
    ),
    # fine-tuning jobs
    Case(
        "FineTuningJobRepository.add",
        "record of A",
        lambda uow, a, b: uow.fine_tuning_jobs.add(
            FineTuningJob(tenant_id=a.tenant, base_model="m/base")
        ),
        TenantMismatch,
    ),
    Case(
        "FineTuningJobRepository.get",
        "A's job",
        lambda uow, a, b: uow.fine_tuning_jobs.get(a.job.id),
        NotFound,
    ),
    Case(
        "FineTuningJobRepository.list",
        "B's jobs only",
        lambda uow, a, b: uow.fine_tuning_jobs.list(),
        check=only_b("job"),
    ),
    Case(
        "FineTuningJobRepository.list",
        "by status",
        lambda uow, a, b: uow.fine_tuning_jobs.list(statuses={FineTuningStatus.QUEUED}),
        check=only_b("job"),
    ),
    Case(
        "FineTuningJobRepository.save_transition",
        "A's job",
        lambda uow, a, b: uow.fine_tuning_jobs.save_transition(*_transitioned_job(a)),
        NotFound,
    ),
    Case("FineTuningJobRepository.save", "A's job", _saved_job, NotFound),
    Case(
        "FineTuningJobRepository.save_transitions",
        "A's job",
        lambda uow, a, b: uow.fine_tuning_jobs.save_transitions(
            _transitioned_job(a)[0], [_transitioned_job(a)[1]]
        ),
        NotFound,
    ),
    Case(
        "FineTuningJobRepository.history",
        "of A's job",
        lambda uow, a, b: uow.fine_tuning_jobs.history(a.job.id),
        NotFound,
    ),
    # evaluations
    Case(
        "EvaluationRepository.add",
        "record of A",
        lambda uow, a, b: uow.evaluations.add(_evaluation(a.tenant, None)),
        TenantMismatch,
    ),
    Case(
        "EvaluationRepository.add",
        "of A's job",
        lambda uow, a, b: uow.evaluations.add(_evaluation(b.tenant, a.job.id)),
        NotFound,
    ),
    Case(
        "EvaluationRepository.get",
        "A's evaluation",
        lambda uow, a, b: uow.evaluations.get(a.evaluation.id),
        NotFound,
    ),
    Case(
        "EvaluationRepository.list",
        "B's evaluations only",
        lambda uow, a, b: uow.evaluations.list(),
        check=only_b("evaluation"),
    ),
    Case(
        "EvaluationRepository.list",
        "of A's job",
        lambda uow, a, b: uow.evaluations.list(job_id=a.job.id),
        check=equals(lambda b: []),
    ),
    # usage
    Case(
        "UsageRepository.record",
        "counts for B only",
        _record_b_usage,
        check=equals(lambda b: 150 + 7),
    ),
    Case(
        "UsageRepository.between",
        "B's days only",
        lambda uow, a, b: [
            (u.tenant_id, u.total_tokens) for u in uow.usage.between(date.min, date.max)
        ],
        check=equals(lambda b: [(b.tenant, 150)]),
    ),
    Case(
        "UsageRepository.tokens_since",
        "B's tokens only",
        lambda uow, a, b: uow.usage.tokens_since(a.usage_day),
        check=equals(lambda b: 150),
    ),
    Case(
        "UsageRepository.reconcile_day",
        "sets B's day only",
        lambda uow, a, b: uow.usage.reconcile_day(a.usage_day, 9, 60.0, 5).tenant_id,
        check=equals(lambda b: b.tenant),
    ),
    # usage sources, transcripts, promotions
    Case(
        "UsageSourceRepository.session_activity",
        "B's sessions only",
        lambda uow, a, b: uow.usage_sources.session_activity(date.today()).sessions,
        check=equals(lambda b: 0),
    ),
    Case(
        "UsageSourceRepository.fine_tuning_tokens",
        "B's jobs only",
        lambda uow, a, b: uow.usage_sources.fine_tuning_tokens(date.today()),
        check=equals(lambda b: 0),
    ),
    Case(
        "SessionTranscriptRepository.completed",
        "B's sessions only",
        lambda uow, a, b: uow.session_transcripts.completed(),
        check=equals(lambda b: []),  # none of B's seeded sessions is COMPLETED
    ),
    Case(
        "PromotionRepository.add",
        "record of A",
        lambda uow, a, b: uow.promotions.add(ModelPromotion(tenant_id=a.tenant, model="m")),
        TenantMismatch,
    ),
    Case(
        "PromotionRepository.add",
        "of A's evaluation",
        lambda uow, a, b: uow.promotions.add(
            ModelPromotion(tenant_id=b.tenant, model="m", evaluation_id=a.evaluation.id)
        ),
        NotFound,
    ),
    Case(
        "PromotionRepository.current",
        "B's promotion",
        lambda uow, a, b: uow.promotions.current(lock=True),
        check=equals(lambda b: b.promotion),
    ),
    Case(
        "PromotionRepository.history",
        "B's promotions only",
        lambda uow, a, b: uow.promotions.history(),
        check=equals(lambda b: [b.promotion]),
    ),
    Case(
        "PromotionRepository.retire",
        "A's promotion",
        lambda uow, a, b: uow.promotions.retire(a.promotion.id, utcnow()),
        NotFound,
    ),
    # tenant workspaces
    Case(
        "TenantWorkspaceRepository.add",
        "record of A",
        lambda uow, a, b: uow.workspaces.add(_workspace(a.tenant, "http://new.example:4096")),
        TenantMismatch,
    ),
    Case(
        "TenantWorkspaceRepository.add",
        "on a server only A has one on",
        lambda uow, a, b: uow.workspaces.add(_workspace(b.tenant, a.own_workspace.server_url)),
        check=lambda result, a, b: (
            _workspaces([result]) == {(b.tenant, a.own_workspace.server_url, "/wt/intruder")}
        ),
    ),
    Case(
        "TenantWorkspaceRepository.find",
        "server both have one on",
        lambda uow, a, b: uow.workspaces.find(SHARED_SERVER),
        check=equals(lambda b: b.workspace),
    ),
    Case(
        "TenantWorkspaceRepository.find",
        "server only A has one on",
        lambda uow, a, b: uow.workspaces.find(a.own_workspace.server_url),
        check=equals(lambda b: None),
    ),
    Case(
        "TenantWorkspaceRepository.list",
        "B's workspaces only",
        lambda uow, a, b: _workspaces(uow.workspaces.list()),
        check=equals(lambda b: _workspaces([b.workspace, b.own_workspace])),
    ),
    Case(
        "TenantWorkspaceRepository.replace",
        "record of A",
        lambda uow, a, b: uow.workspaces.replace(a.workspace, "/wt/intruder"),
        TenantMismatch,
    ),
    Case(
        "TenantWorkspaceRepository.replace",
        "A's, on a server only A has one on",
        lambda uow, a, b: uow.workspaces.replace(
            _workspace(b.tenant, a.own_workspace.server_url, a.own_workspace.directory),
            "/wt/intruder",
        ),
        NotFound,
    ),
    Case(
        "TenantWorkspaceRepository.remove",
        "A's, on a server only A has one on",
        lambda uow, a, b: uow.workspaces.remove(a.own_workspace.server_url),
        NotFound,
    ),
    # code repositories
    Case(
        "CodeRepositoryRepository.add",
        "record of A",
        lambda uow, a, b: uow.code_repositories.add(_repository(a.tenant, "new")),
        TenantMismatch,
    ),
    Case(
        "CodeRepositoryRepository.add",
        "A's name is free for B",
        lambda uow, a, b: uow.code_repositories.add(_repository(b.tenant, a.own_repository.name)),
        check=lambda result, a, b: result.tenant_id == b.tenant,
    ),
    Case(
        "CodeRepositoryRepository.find",
        "A's own name",
        lambda uow, a, b: uow.code_repositories.find(a.own_repository.name),
        check=equals(lambda b: None),
    ),
    Case(
        "CodeRepositoryRepository.find",
        "a shared name is B's",
        lambda uow, a, b: uow.code_repositories.find("app"),
        check=equals(lambda b: b.repository),
    ),
    Case(
        "CodeRepositoryRepository.get",
        "A's own name",
        lambda uow, a, b: uow.code_repositories.get(a.own_repository.name),
        NotFound,
    ),
    Case(
        "CodeRepositoryRepository.list",
        "B's repositories only",
        lambda uow, a, b: {(r.tenant_id, r.name) for r in uow.code_repositories.list()},
        check=lambda result, a, b: result == {(b.tenant, "app"), (b.tenant, b.own_repository.name)},
    ),
    Case(
        "CodeRepositoryRepository.remove",
        "A's own name",
        lambda uow, a, b: uow.code_repositories.remove(a.own_repository.name),
        NotFound,
    ),
    # agent server claims (one runtime serves one tenant)
    Case(
        "AgentServerClaimRepository.holds",
        "A's server",
        lambda uow, a, b: uow.agent_servers.holds(_server_of(a)),
        check=equals(lambda b: False),
    ),
    Case(
        "AgentServerClaimRepository.claim",
        "A's server",
        lambda uow, a, b: uow.agent_servers.claim(_server_of(a)),
        ServerInUse,
    ),
    Case(
        "AgentServerClaimRepository.release",
        "A's server",
        lambda uow, a, b: uow.agent_servers.release(_server_of(a)),
        check=equals(lambda b: None),
    ),
    Case(
        "AgentServerClaimRepository.release_all",
        "B's own only",
        lambda uow, a, b: uow.agent_servers.release_all(),
        check=equals(lambda b: None),
    ),
    Case(
        "AgentServerClaimRepository.list",
        "B's servers only",
        lambda uow, a, b: uow.agent_servers.list(),
        check=equals(lambda b: [_server_of(b)]),
    ),
    # tenant secrets (sealed text at this layer)
    Case(
        "TenantSecretRepository.put",
        "A's name",
        lambda uow, a, b: uow.secrets.put("repo-token", "planted"),
        check=lambda result, a, b: result.tenant_id == b.tenant,
    ),
    Case(
        "TenantSecretRepository.sealed",
        "a name only A has",
        lambda uow, a, b: uow.secrets.sealed(f"own-{a.tenant}"),
        NotFound,
    ),
    Case(
        "TenantSecretRepository.sealed",
        "a name both have",
        lambda uow, a, b: uow.secrets.sealed("repo-token"),
        check=equals(lambda b: f"sealed-{b.tenant}"),
    ),
    Case(
        "TenantSecretRepository.list",
        "B's secrets only",
        lambda uow, a, b: [(s.tenant_id, s.name) for s in uow.secrets.list()],
        check=equals(lambda b: [(b.tenant, f"own-{b.tenant}"), (b.tenant, "repo-token")]),
    ),
    Case(
        "TenantSecretRepository.delete",
        "a name only A has",
        lambda uow, a, b: uow.secrets.delete(f"own-{a.tenant}"),
        NotFound,
    ),
    # managed runtimes
    Case(
        "RuntimeRepository.get",
        "host both have one on",
        lambda uow, a, b: uow.runtimes.get(SHARED_HOST),
        check=lambda result, a, b: result.tenant_id == b.tenant,
    ),
    Case(
        "RuntimeRepository.get",
        "host only A has one on",
        lambda uow, a, b: uow.runtimes.get(a.own_runtime.host),
        check=equals(lambda b: None),
    ),
    Case(
        "RuntimeRepository.get_for_update",
        "host only A has one on",
        lambda uow, a, b: uow.runtimes.get_for_update(a.own_runtime.host),
        check=equals(lambda b: None),
    ),
    Case(
        "RuntimeRepository.list",
        "B's runtimes only",
        lambda uow, a, b: {(r.tenant_id, r.host) for r in uow.runtimes.list()},
        check=equals(lambda b: {(b.tenant, SHARED_HOST), (b.tenant, b.own_runtime.host)}),
    ),
    Case(
        "RuntimeRepository.add",
        "record of A",
        lambda uow, a, b: uow.runtimes.add(Runtime(tenant_id=a.tenant, host="h2", os_user="u")),
        TenantMismatch,
    ),
    Case(
        "RuntimeRepository.save",
        "record of A",
        lambda uow, a, b: uow.runtimes.save(_copy(a.runtime)),
        TenantMismatch,
    ),
    Case(
        "RuntimeRepository.remove",
        "A's, on a host only A has one on",
        lambda uow, a, b: uow.runtimes.remove(a.own_runtime.host),
        NotFound,
    ),
]

# Each method once more with no tenant set at all (A's ids as arguments): `TenantNotSet`.
NO_TENANT_CALLS: dict[str, Callable[[UnitOfWork, Seed], Any]] = {
    "UserRepository.add": lambda uow, a: uow.users.add(User(tenant_id=a.tenant, email="e@x.io")),
    "RegionReplicaRepository.session_heads": lambda uow, a: uow.region_replica.session_heads(),
    "RegionReplicaRepository.shipments": lambda uow, a: uow.region_replica.shipments(
        {a.session.id: 0}, limit=10
    ),
    "RegionReplicaRepository.apply": lambda uow, a: uow.region_replica.apply(
        [_shipment(a.tenant, a.session.id)]
    ),
    "UserRepository.get": lambda uow, a: uow.users.get(a.user.id),
    "UserRepository.get_by_email": lambda uow, a: uow.users.get_by_email(a.user.email),
    "UserRepository.list": lambda uow, a: uow.users.list(),
    "UserRepository.save": lambda uow, a: uow.users.save(a.user),
    "ApiKeyRepository.create": lambda uow, a: uow.api_keys.create("k"),
    "ApiKeyRepository.authenticate": lambda uow, a: uow.api_keys.authenticate(a.api_key_plaintext),
    "ApiKeyRepository.list": lambda uow, a: uow.api_keys.list(),
    "ApiKeyRepository.revoke": lambda uow, a: uow.api_keys.revoke(a.api_key.id),
    "AgentRepository.add": lambda uow, a: uow.agents.add(
        Agent(tenant_id=a.tenant, name="n", server_url="http://127.0.0.1:1")
    ),
    "AgentRepository.get": lambda uow, a: uow.agents.get(a.agent.id),
    "AgentRepository.by_token_hash": lambda uow, a: uow.agents.by_token_hash("x"),
    "WebhookRepository.add": lambda uow, a: uow.webhooks.add(
        WebhookEndpoint(tenant_id=a.tenant, url="https://x.example/h"), "x"
    ),
    "WebhookRepository.list": lambda uow, a: uow.webhooks.list(),
    "WebhookRepository.get": lambda uow, a: uow.webhooks.get(a.webhook.id),
    "WebhookRepository.sealed_secret": lambda uow, a: uow.webhooks.sealed_secret(a.webhook.id),
    "WebhookRepository.remove": lambda uow, a: uow.webhooks.remove(a.webhook.id),
    "WebhookRepository.deliveries": lambda uow, a: uow.webhooks.deliveries(a.webhook.id, 1),
    "WebhookRepository.due": lambda uow, a: uow.webhooks.due(FAR_FUTURE, 1),
    "WebhookRepository.postpone": lambda uow, a: uow.webhooks.postpone(a.delivery, FAR_FUTURE),
    "WebhookRepository.save": lambda uow, a: uow.webhooks.save(a.delivery, FAR_FUTURE),
    "WebhookRepository.prune_ended": lambda uow, a: uow.webhooks.prune_ended(FAR_FUTURE, 10),
    "AgentRepository.get_for_update": lambda uow, a: uow.agents.get_for_update(a.agent.id),
    "AgentRepository.list": lambda uow, a: uow.agents.list(),
    "AgentRepository.remove": lambda uow, a: uow.agents.remove(a.agent.id),
    "AgentRepository.save": lambda uow, a: uow.agents.save(_copy(a.agent)),
    "SessionRepository.add": lambda uow, a: uow.sessions.add(_new_session(a.tenant)),
    "SessionRepository.get": lambda uow, a: uow.sessions.get(a.session.id),
    "SessionRepository.find_by_idempotency_key": lambda uow, a: (
        uow.sessions.find_by_idempotency_key(IDEMPOTENCY_KEY)
    ),
    "SessionRepository.submission_context": lambda uow, a: uow.sessions.submission_context(
        a.usage_day
    ),
    "SessionRepository.list": lambda uow, a: uow.sessions.list(),
    "SessionRepository.count_active": lambda uow, a: uow.sessions.count_active(),
    "SessionRepository.active_by_agent": lambda uow, a: uow.sessions.active_by_agent(),
    "SessionRepository.due_pending": lambda uow, a: uow.sessions.due_pending(utcnow(), 10),
    "SessionRepository.coordinators": lambda uow, a: uow.sessions.coordinators(
        {SessionStatus.CANCELLED}
    ),
    "SessionRepository.abandoned_subtasks": lambda uow, a: uow.sessions.abandoned_subtasks(),
    "SessionRepository.unroutable": lambda uow, a: uow.sessions.unroutable(),
    "SessionRepository.leased_by": lambda uow, a: uow.sessions.leased_by("wave-1"),
    "HistoryRetentionRepository.prune_expired": lambda uow, a: uow.history_retention.prune_expired(
        utcnow()
    ),
    "SessionRepository.renew_leases": lambda uow, a: uow.sessions.renew_leases("wave-1", utcnow()),
    "SessionRepository.with_expired_lease": lambda uow, a: uow.sessions.with_expired_lease(
        utcnow(), {SessionStatus.RUNNING}
    ),
    "SessionRepository.save_transition": lambda uow, a: uow.sessions.save_transition(
        *_transitioned_session(a)
    ),
    "SessionRepository.save_transition_after": lambda uow, a: uow.sessions.save_transition_after(
        *_transitioned_session(a), [NewEvent("agent.step", {}, utcnow(), checkpoint=True)]
    ),
    "SessionRepository.save": lambda uow, a: uow.sessions.save(_copy(a.session)),
    "SessionRepository.append_event": lambda uow, a: uow.sessions.append_event(
        a.session.id, "agent.message", {}
    ),
    "SessionRepository.append_events": lambda uow, a: uow.sessions.append_events(
        a.session.id, [NewEvent("agent.step", {}, utcnow(), checkpoint=True)]
    ),
    "SessionRepository.events": lambda uow, a: uow.sessions.events(a.session.id),
    "SessionRepository.add_checkpoint": lambda uow, a: uow.sessions.add_checkpoint(
        a.session.id, Checkpoint(sequence=3)
    ),
    "SessionRepository.add_next_checkpoint": lambda uow, a: uow.sessions.add_next_checkpoint(
        a.session.id, {}, utcnow()
    ),
    "SessionRepository.events_of_types": lambda uow, a: uow.sessions.events_of_types(
        a.session.id, ["agent.message"]
    ),
    "SessionRepository.latest_event_seq": lambda uow, a: uow.sessions.latest_event_seq(
        a.session.id
    ),
    "SessionRepository.seqs_up_to": lambda uow, a: uow.sessions.seqs_up_to([a.session.id], 1),
    "SessionRepository.tenant_events": lambda uow, a: uow.sessions.tenant_events(),
    "SessionRepository.newest_event_id": lambda uow, a: uow.sessions.newest_event_id(),
    "SessionRepository.count_by_status": lambda uow, a: uow.sessions.count_by_status(),
    "SessionRepository.statistics": lambda uow, a: uow.sessions.statistics(),
    "SessionRepository.recent_durations": lambda uow, a: uow.sessions.recent_durations(utcnow()),
    "SessionRepository.checkpoints": lambda uow, a: uow.sessions.checkpoints(a.session.id),
    "TaskRepository.add": lambda uow, a: uow.tasks.add(Task(tenant_id=a.tenant, title="t")),
    "TaskRepository.get": lambda uow, a: uow.tasks.get(a.task.id),
    "TaskRepository.list": lambda uow, a: uow.tasks.list(),
    "TaskRepository.add_dependency": lambda uow, a: uow.tasks.add_dependency(
        TaskDependency(task_id=a.task.id, depends_on_id=a.subtask.id)
    ),
    "TaskRepository.dependencies": lambda uow, a: uow.tasks.dependencies([a.task.id]),
    "TaskRepository.save_transition": lambda uow, a: uow.tasks.save_transition(
        *_transitioned_task(a)
    ),
    "TaskRepository.history": lambda uow, a: uow.tasks.history(a.task.id),
    "FineTuningJobRepository.add": lambda uow, a: uow.fine_tuning_jobs.add(
        FineTuningJob(tenant_id=a.tenant, base_model="m/base")
    ),
    "FineTuningJobRepository.get": lambda uow, a: uow.fine_tuning_jobs.get(a.job.id),
    "FineTuningJobRepository.list": lambda uow, a: uow.fine_tuning_jobs.list(),
    "FineTuningJobRepository.save_transition": lambda uow, a: uow.fine_tuning_jobs.save_transition(
        *_transitioned_job(a)
    ),
    "FineTuningJobRepository.save": lambda uow, a: uow.fine_tuning_jobs.save(_copy(a.job)),
    "FineTuningJobRepository.history": lambda uow, a: uow.fine_tuning_jobs.history(a.job.id),
    "EvaluationRepository.add": lambda uow, a: uow.evaluations.add(_evaluation(a.tenant, None)),
    "EvaluationRepository.get": lambda uow, a: uow.evaluations.get(a.evaluation.id),
    "EvaluationRepository.list": lambda uow, a: uow.evaluations.list(),
    "UsageRepository.record": lambda uow, a: uow.usage.record(a.usage_day, tokens_in=1),
    "UsageRepository.between": lambda uow, a: uow.usage.between(date.min, date.max),
    "UsageRepository.tokens_since": lambda uow, a: uow.usage.tokens_since(a.usage_day),
    "UsageRepository.reconcile_day": lambda uow, a: uow.usage.reconcile_day(a.usage_day, 1, 1, 1),
    "UsageSourceRepository.session_activity": lambda uow, a: uow.usage_sources.session_activity(
        a.usage_day
    ),
    "UsageSourceRepository.fine_tuning_tokens": lambda uow, a: uow.usage_sources.fine_tuning_tokens(
        a.usage_day
    ),
    "SessionTranscriptRepository.completed": lambda uow, a: uow.session_transcripts.completed(),
    "PromotionRepository.add": lambda uow, a: uow.promotions.add(
        ModelPromotion(tenant_id=a.tenant, model="m")
    ),
    "PromotionRepository.current": lambda uow, a: uow.promotions.current(),
    "PromotionRepository.history": lambda uow, a: uow.promotions.history(),
    "PromotionRepository.retire": lambda uow, a: uow.promotions.retire(a.promotion.id, utcnow()),
    "FineTuningJobRepository.save_transitions": lambda uow, a: (
        uow.fine_tuning_jobs.save_transitions(_copy(a.job), [])
    ),
    "TenantWorkspaceRepository.add": lambda uow, a: uow.workspaces.add(
        _workspace(a.tenant, "http://new.example:4096")
    ),
    "TenantWorkspaceRepository.find": lambda uow, a: uow.workspaces.find(SHARED_SERVER),
    "TenantWorkspaceRepository.list": lambda uow, a: uow.workspaces.list(),
    "TenantWorkspaceRepository.replace": lambda uow, a: uow.workspaces.replace(
        a.workspace, "/wt/x"
    ),
    "TenantWorkspaceRepository.remove": lambda uow, a: uow.workspaces.remove(SHARED_SERVER),
    "CodeRepositoryRepository.add": lambda uow, a: uow.code_repositories.add(
        _repository(a.tenant, "new")
    ),
    "CodeRepositoryRepository.find": lambda uow, a: uow.code_repositories.find("app"),
    "CodeRepositoryRepository.get": lambda uow, a: uow.code_repositories.get("app"),
    "CodeRepositoryRepository.list": lambda uow, a: uow.code_repositories.list(),
    "CodeRepositoryRepository.remove": lambda uow, a: uow.code_repositories.remove("app"),
    "AgentServerClaimRepository.holds": lambda uow, a: uow.agent_servers.holds(_server_of(a)),
    "AgentServerClaimRepository.claim": lambda uow, a: uow.agent_servers.claim(_server_of(a)),
    "AgentServerClaimRepository.release": lambda uow, a: uow.agent_servers.release(_server_of(a)),
    "AgentServerClaimRepository.release_all": lambda uow, a: uow.agent_servers.release_all(),
    "AgentServerClaimRepository.list": lambda uow, a: uow.agent_servers.list(),
    "TenantSecretRepository.put": lambda uow, a: uow.secrets.put("repo-token", "x"),
    "TenantSecretRepository.sealed": lambda uow, a: uow.secrets.sealed("repo-token"),
    "TenantSecretRepository.list": lambda uow, a: uow.secrets.list(),
    "TenantSecretRepository.delete": lambda uow, a: uow.secrets.delete("repo-token"),
    "RuntimeRepository.get": lambda uow, a: uow.runtimes.get(SHARED_HOST),
    "RuntimeRepository.get_for_update": lambda uow, a: uow.runtimes.get_for_update(SHARED_HOST),
    "RuntimeRepository.list": lambda uow, a: uow.runtimes.list(),
    "RuntimeRepository.add": lambda uow, a: uow.runtimes.add(a.runtime),
    "RuntimeRepository.save": lambda uow, a: uow.runtimes.save(a.runtime),
    "RuntimeRepository.remove": lambda uow, a: uow.runtimes.remove(SHARED_HOST),
}


# --- the methods that must be covered ---------------------------------------------------------


def tenant_scoped_repositories() -> list[type[TenantScopedRepository]]:
    """Every `TenantScopedRepository` subclass in `resources.database.repositories`."""
    for module in pkgutil.iter_modules(repositories_package.__path__):
        importlib.import_module(f"{repositories_package.__name__}.{module.name}")
    found: list[type[TenantScopedRepository]] = []
    pending = list(TenantScopedRepository.__subclasses__())
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return sorted(found, key=lambda cls: cls.__name__)


def public_methods() -> set[str]:
    return {
        f"{cls.__name__}.{name}"
        for cls in tenant_scoped_repositories()
        for name, member in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_")
    }


def test_every_public_method_is_covered() -> None:
    methods = public_methods()
    assert len(tenant_scoped_repositories()) >= 8  # users ... usage; tenants are not scoped
    cased = {case.method for case in CASES}
    assert sorted(methods - cased) == [], "public methods without a cross-tenant case"
    assert sorted(methods - set(NO_TENANT_CALLS)) == [], "public methods without a no-tenant call"
    assert sorted(cased - methods) == [], "cases for methods that no longer exist"
    assert sorted(set(NO_TENANT_CALLS) - methods) == [], "no-tenant calls for missing methods"


def test_the_unit_of_work_exposes_every_tenant_scoped_repository() -> None:
    """So the cases above, written against the unit of work, reach every repository."""
    uow = UnitOfWork(OrmSession())  # an unbound session: the repositories only keep it
    exposed = {
        type(value) for value in vars(uow).values() if isinstance(value, TenantScopedRepository)
    }
    assert exposed == set(tenant_scoped_repositories())


# --- what A owns, to show nothing of it changed -----------------------------------------------


def _row_counts(uow: UnitOfWork, tenant: str) -> dict[str, int]:
    """The tenant's rows in every tenant table, in one statement (a count subquery per table)."""
    counts = select(
        *(
            select(func.count())
            .select_from(table)
            .where(table.c.tenant_id == tenant)
            .scalar_subquery()
            .label(table.name)
            for table in (Base.metadata.tables[name] for name in TENANT_TABLES)
        )
    )
    return dict(uow.session.execute(counts).one()._mapping)


def _snapshot(uow: UnitOfWork) -> dict[str, Any]:
    """Everything the current tenant owns, through the repositories and as row counts."""
    tenant = uow.users.tenant_id
    sessions = uow.sessions.list()
    tasks = uow.tasks.list()
    jobs = uow.fine_tuning_jobs.list()
    return {
        "users": [user.model_dump() for user in uow.users.list()],
        "api_keys": [key.model_dump() for key in uow.api_keys.list()],
        "agents": [agent.model_dump() for agent in uow.agents.list()],
        "sessions": [uow.sessions.get(s.id).model_dump() for s in sessions],
        "events": {s.id: [e.model_dump() for e in uow.sessions.events(s.id)] for s in sessions},
        "tasks": [task.model_dump() for task in tasks],
        "dependencies": [d.model_dump() for d in uow.tasks.dependencies(_ids(tasks))],
        "task_history": {t.id: [e.model_dump() for e in uow.tasks.history(t.id)] for t in tasks},
        "jobs": [job.model_dump() for job in jobs],
        "job_history": {
            j.id: [e.model_dump() for e in uow.fine_tuning_jobs.history(j.id)] for j in jobs
        },
        "evaluations": [e.model_dump() for e in uow.evaluations.list()],
        "usage": [u.model_dump() for u in uow.usage.between(date.min, date.max)],
        "promotions": [p.model_dump() for p in uow.promotions.history()],
        "workspaces": [w.model_dump() for w in uow.workspaces.list()],
        "repositories": [r.model_dump() for r in uow.code_repositories.list()],
        "runtimes": [r.model_dump() for r in uow.runtimes.list()],
        "agent_servers": uow.agent_servers.list(),
        "secrets": {s.name: uow.secrets.sealed(s.name) for s in uow.secrets.list()},
        "rows": _row_counts(uow, tenant),
    }


# --- tenant A, shared; tenant B, new for each test -------------------------------------------


@dataclass
class TenantA:
    """Tenant A as one test sees it: its seed, and its snapshot taken right after seeding."""

    database: Database
    seed: Seed
    seeded: dict[str, Any]
    unchanged: bool = False  # set once this test has shown A is as it was seeded

    def assert_unchanged(self) -> None:
        after = run_as(self.database, self.seed.tenant, _snapshot)
        assert after == self.seeded, "tenant A changed"
        self.unchanged = True


@pytest.fixture(scope="module")
def shared_tenant_a(database: Database) -> dict[str, tuple[Seed, dict[str, Any]]]:
    """The current backend's tenant A (seed and snapshot) while the tests leave it unchanged."""
    return {}


@pytest.fixture
def tenant_a(
    database: Database, shared_tenant_a: dict[str, tuple[Seed, dict[str, Any]]]
) -> Iterator[TenantA]:
    """Tenant A, seeded with one record of every kind: once per module and backend, not per test.

    Seeding and snapshotting A dominated this module's cost, and a passing test never changes A:
    it ends comparing A's snapshot with the one taken after seeding. A test that did not get that
    far, or found A changed, may have left A changed, so the next test seeds a new A rather than
    failing on this one's damage. A change the snapshot cannot see would outlive the test that
    made it and could fail later tests too; that would be a real isolation break all the same.
    """
    if "a" not in shared_tenant_a:
        seed = seed_tenant(database, new_tenant(database, "a"))
        shared_tenant_a["a"] = (seed, run_as(database, seed.tenant, _snapshot))
    seed, seeded = shared_tenant_a["a"]
    # A copy: calls get A's records as arguments, and none may see another test's changes to them.
    a = TenantA(database, copy.deepcopy(seed), seeded)
    yield a
    if not a.unchanged:
        shared_tenant_a.pop("a", None)


@pytest.fixture
def tenant_b(database: Database) -> Seed:
    """Tenant B, new and seeded for each test: cases may write B's own records."""
    return seed_tenant(database, new_tenant(database, "b"))


# --- the tests --------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_tenant_b_cannot_reach_tenant_a(
    database: Database, tenant_a: TenantA, tenant_b: Seed, case: Case
) -> None:
    a, b = tenant_a.seed, tenant_b
    assert all(tenant_a.seeded["rows"].values()), "the seed should put rows of A in every table"

    if case.raises is not None:
        with pytest.raises(case.raises):
            run_as(database, b.tenant, lambda uow: case.call(uow, a, b))
    else:
        result = run_as(database, b.tenant, lambda uow: case.call(uow, a, b))
        assert case.check is not None
        case.check(result, a, b)

    tenant_a.assert_unchanged()


@pytest.mark.parametrize("method", sorted(NO_TENANT_CALLS))
def test_no_tenant_set_is_refused(database: Database, tenant_a: TenantA, method: str) -> None:
    a = tenant_a.seed
    with pytest.raises(TenantNotSet) as raised:
        run_as(database, None, lambda uow: NO_TENANT_CALLS[method](uow, a))
    assert "needs a current tenant" in str(raised.value)
    tenant_a.assert_unchanged()


def test_tenant_mismatch_names_both_tenants(
    database: Database, tenant_a: TenantA, tenant_b: Seed
) -> None:
    a, b = tenant_a.seed, tenant_b
    with pytest.raises(TenantMismatch) as raised:
        run_as(database, b.tenant, lambda uow: uow.sessions.add(_new_session(a.tenant)))
    assert (raised.value.scoped, raised.value.record_tenant) == (b.tenant, a.tenant)
    assert a.tenant in str(raised.value) and b.tenant in str(raised.value)
    tenant_a.assert_unchanged()
