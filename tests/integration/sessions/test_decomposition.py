"""Decomposed requests through the session and coordination services, on SQLite and PostgreSQL.

Contract: a request with subtasks is written in one transaction as a coordinating parent, one
child session and task per subtask, and the dependency edges; a cycle, a chain deeper than 10 or
an unknown dependency is refused with `InvalidInput` and writes nothing. The dispatcher claims a
child only once its prerequisites COMPLETED and never claims the parent, which holds no
concurrency slot and is never adopted; the coordination pass cancels children whose prerequisite
failed for good and ends the parent COMPLETED / PARTIALLY_COMPLETED / FAILED with the children's
results and summed metrics. Cancelling the parent cancels its children.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from domain.caller import Caller
from domain.clock import utcnow
from domain.decomposition import SubtaskSpec
from domain.errors import InvalidInput
from domain.metrics import SessionMetrics
from domain.session import Session, SessionStatus
from domain.task import TaskStatus
from domain.tenant import Tenant
from resources.database import Database, tenant_scope, unit_of_work
from resources.database.schema import SessionRow, TaskDependencyRow, TaskRow
from services.request_settlement import CoordinationService
from services.session_service import SessionService, SubmitSession

S = SessionStatus
LEASE = timedelta(minutes=5)


@pytest.fixture
def tenant(database: Database) -> str:
    slug = f"t-{uuid.uuid4().hex[:10]}"
    with unit_of_work(database) as uow:
        uow.tenants.add(Tenant(slug=slug, name=slug, max_concurrent_sessions=1))
    return slug


def spec(title: str, *depends_on: str | int, key: str | None = None, **fields: Any) -> SubtaskSpec:
    return SubtaskSpec(
        title=title, prompt=f"Do {title}.", depends_on=list(depends_on), key=key, **fields
    )


def chain(length: int) -> list[SubtaskSpec]:
    return [spec(f"step {n}", *([n - 1] if n else [])) for n in range(length)]


def request(subtasks: list[SubtaskSpec], **fields: Any) -> SubmitSession:
    return SubmitSession(title="Ship it", prompt="Ship the feature.", subtasks=subtasks, **fields)


def row_counts(database: Database, tenant: str) -> tuple[int, int, int]:
    with tenant_scope(tenant), unit_of_work(database) as uow:
        return tuple(  # type: ignore[return-value]
            uow.session.scalar(
                select(func.count()).select_from(table).where(table.tenant_id == tenant)
            )
            for table in (SessionRow, TaskRow, TaskDependencyRow)
        )


def children_of(database: Database, tenant: str, parent_id: str) -> list[Session]:
    with tenant_scope(tenant), unit_of_work(database) as uow:
        return sorted(uow.sessions.list(parent_id=parent_id), key=lambda s: s.id)


def claim(service: SessionService, tenant: str) -> list[str]:
    claimed = service.claim_pending(tenant, 10, LEASE, lambda sessions: "wave-test")
    return [session.id for session in claimed.sessions]


def run(
    database: Database, tenant: str, session_id: str, end: SessionStatus, **fields: Any
) -> None:
    """What a wave does to a claimed session: RUNNING, then `end` with a result and metrics."""
    with tenant_scope(tenant), unit_of_work(database) as uow:
        session = uow.sessions.get(session_id)
        for name, value in fields.items():
            setattr(session, name, value)
        uow.sessions.save_transition(session, session.transition_to(S.RUNNING, "on agent"))
        session.lease_owner = session.lease_expires_at = None
        uow.sessions.save_transition(session, session.transition_to(end, "agent finished"))


def task_statuses(database: Database, tenant: str, children: list[Session]) -> list[TaskStatus]:
    with tenant_scope(tenant), unit_of_work(database) as uow:
        return [uow.tasks.list(session_id=child.id)[0].status for child in children]


# --- submit -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subtasks", "message"),
    [
        (
            [spec("a", "c", key="a"), spec("b", "a", key="b"), spec("c", "b", key="c")],
            "cycle: a -> c -> b -> a",
        ),
        (chain(12), "chain of depth 11 (at most 10 allowed): 11 -> 10 -> 9"),
        ([spec("a", key="a"), spec("b", "nope", key="b")], "unknown subtask 'nope'"),
    ],
    ids=["cycle", "depth-11", "unknown"],
)
def test_a_refused_graph_writes_nothing(
    database: Database, tenant: str, subtasks: list[SubtaskSpec], message: str
) -> None:
    service = SessionService(database)
    with pytest.raises(InvalidInput) as refused:
        service.submit(Caller.operator(), tenant, request(subtasks, idempotency_key="k-1"))
    assert refused.value.field == "subtasks"
    assert message in str(refused.value)
    assert row_counts(database, tenant) == (0, 0, 0)


def test_a_chain_of_depth_ten_is_accepted(database: Database, tenant: str) -> None:
    parent = SessionService(database).submit(Caller.operator(), tenant, request(chain(11)))
    assert len(children_of(database, tenant, parent.id)) == 11
    assert row_counts(database, tenant) == (12, 11, 10)


def test_a_request_with_subtasks_writes_a_parent_children_tasks_and_edges(
    database: Database, tenant: str
) -> None:
    published: list[Any] = []
    service = SessionService(database, publish=published.append)
    subtasks = [spec("A", key="a"), spec("B", "a", key="b", max_retries=0), spec("C", 1)]

    parent = service.submit(
        Caller.operator(), tenant, request(subtasks, max_retries=2, model="openai/gpt-4o")
    )

    assert parent.max_retries == 0
    assert parent.metadata["decomposition"] == {"subtasks": 3, "by": "request"}
    a, b, c = children_of(database, tenant, parent.id)
    assert [child.title for child in (a, b, c)] == ["A", "B", "C"]
    assert [child.max_retries for child in (a, b, c)] == [2, 0, 2]
    assert {child.model for child in (a, b, c)} == {"openai/gpt-4o"}
    assert '"Ship it"' in a.initial_prompt
    with tenant_scope(tenant), unit_of_work(database) as uow:
        tasks = [uow.tasks.list(session_id=child.id)[0] for child in (a, b, c)]
        edges = {(d.task_id, d.depends_on_id) for d in uow.tasks.dependencies([tasks[0].id])}
        edges |= {(d.task_id, d.depends_on_id) for d in uow.tasks.dependencies([tasks[2].id])}
    assert edges == {(tasks[1].id, tasks[0].id), (tasks[2].id, tasks[1].id)}
    assert {event.session_id for event in published} == {parent.id, a.id, b.id, c.id}
    with tenant_scope(tenant), unit_of_work(database) as uow:  # what was published was stored
        stored = [event for s in (parent, a, b, c) for event in uow.sessions.events(s.id)]
    assert published == stored


def test_the_same_idempotency_key_gives_the_same_decomposed_request(
    database: Database, tenant: str
) -> None:
    service = SessionService(database)
    first = service.submit(Caller.operator(), tenant, request(chain(2), idempotency_key="k"))
    again = service.submit(Caller.operator(), tenant, request(chain(2), idempotency_key="k"))
    assert again.id == first.id
    assert row_counts(database, tenant) == (3, 2, 1)


def test_decompose_splits_the_prompt_or_submits_one_session(
    database: Database, tenant: str
) -> None:
    service = SessionService(database)
    split = service.submit(
        Caller.operator(),
        tenant,
        SubmitSession(title="T", prompt="1. Add the form\n2. Write the tests", decompose=True),
    )
    assert [c.title for c in children_of(database, tenant, split.id)] == [
        "Add the form",
        "Write the tests",
    ]
    assert split.metadata["decomposition"]["by"] == "decomposer"

    single = service.submit(
        Caller.operator(), tenant, SubmitSession(title="T", prompt="Fix it.", decompose=True)
    )
    assert children_of(database, tenant, single.id) == []
    assert single.max_retries == 3 and "decomposition" not in single.metadata


def test_subtasks_and_decompose_together_are_refused(database: Database, tenant: str) -> None:
    with pytest.raises(InvalidInput, match="not both"):
        SessionService(database).submit(
            Caller.operator(), tenant, request(chain(2), decompose=True)
        )


# --- dispatch and settlement ------------------------------------------------------------------


def test_children_run_in_dependency_order_and_the_parent_completes(
    database: Database, tenant: str
) -> None:
    service, coordination = SessionService(database), CoordinationService(database)
    parent = service.submit(Caller.operator(), tenant, request(chain(3)))
    a, b, c = children_of(database, tenant, parent.id)
    files = [{"file": "a.md", "status": "added", "additions": 1, "deletions": 0}]

    assert claim(service, tenant) == [a.id]  # not the parent, not B or C
    run(
        database,
        tenant,
        a.id,
        S.COMPLETED,
        result={"text": "A done", "files": files},
        metrics=SessionMetrics(tokens_in=10, tokens_out=2, cost_usd=0.25),
    )
    assert coordination.settle(tenant) == []
    assert service.get(Caller.operator(), tenant, parent.id).status is S.RUNNING
    with tenant_scope(tenant), unit_of_work(database) as uow:
        assert uow.sessions.count_active() == 0  # the running parent holds no slot
        assert uow.sessions.with_expired_lease(utcnow(), {S.RUNNING}) == []  # nor is adopted
    assert task_statuses(database, tenant, [a, b, c]) == [
        TaskStatus.COMPLETED,
        TaskStatus.READY,
        TaskStatus.PENDING,
    ]

    assert claim(service, tenant) == [b.id]
    run(database, tenant, b.id, S.COMPLETED, metrics=SessionMetrics(tokens_in=5))
    coordination.settle(tenant)
    assert claim(service, tenant) == [c.id]
    run(database, tenant, c.id, S.COMPLETED)
    [ended] = coordination.settle(tenant)

    assert ended.id == parent.id
    parent = service.get(Caller.operator(), tenant, parent.id)
    assert parent.status is S.COMPLETED
    assert parent.status_reason == "3 of 3 subtasks completed"
    assert parent.result is not None
    assert [(r["id"], r["status"]) for r in parent.result["children"]] == [
        (a.id, "COMPLETED"),
        (b.id, "COMPLETED"),
        (c.id, "COMPLETED"),
    ]
    assert parent.result["children"][0]["files"] == files
    assert (parent.metrics.tokens_in, parent.metrics.tokens_out) == (15, 2)
    assert parent.metrics.cost_usd == pytest.approx(0.25)
    assert [e.new_status for e in service.events(Caller.operator(), tenant, parent.id)] == [
        "PENDING",
        "RUNNING",
        "COMPLETED",
    ]
    assert task_statuses(database, tenant, [a, b, c]) == [TaskStatus.COMPLETED] * 3
    assert claim(service, tenant) == []


def test_a_child_failing_for_good_cancels_its_dependents_and_the_parent_partly_completes(
    database: Database, tenant: str
) -> None:
    service, coordination = SessionService(database), CoordinationService(database)
    subtasks = [spec("A"), spec("B", 0, max_retries=0), spec("C", 1), spec("D", 2)]
    parent = service.submit(Caller.operator(), tenant, request(subtasks))
    a, b, c, d = children_of(database, tenant, parent.id)

    claim(service, tenant)
    run(database, tenant, a.id, S.COMPLETED)
    coordination.settle(tenant)
    assert claim(service, tenant) == [b.id]
    run(database, tenant, b.id, S.FAILED)
    assert service.retry_due(tenant) == []  # no retries left: failed for good
    [ended] = coordination.settle(tenant)  # C and D cancelled in one pass

    assert ended.status is S.PARTIALLY_COMPLETED
    c, d = (
        service.get(Caller.operator(), tenant, c.id),
        service.get(Caller.operator(), tenant, d.id),
    )
    assert (c.status, d.status) == (S.CANCELLED, S.CANCELLED)
    assert c.status_reason == f"prerequisite {b.id} (B) ended FAILED"
    assert d.status_reason == f"prerequisite {c.id} (C) ended CANCELLED"
    assert [r["status"] for r in ended.result["children"]] == [
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "CANCELLED",
    ]
    assert task_statuses(database, tenant, [a, b, c, d]) == [
        TaskStatus.COMPLETED,
        TaskStatus.FAILED,
        TaskStatus.CANCELLED,
        TaskStatus.CANCELLED,
    ]
    assert service.retry_due(tenant) == []  # the parent is never retried


def test_a_parent_whose_children_all_failed_fails(database: Database, tenant: str) -> None:
    service, coordination = SessionService(database), CoordinationService(database)
    parent = service.submit(Caller.operator(), tenant, request(chain(2), max_retries=0))
    a, b = children_of(database, tenant, parent.id)
    claim(service, tenant)
    run(database, tenant, a.id, S.TIMEOUT)
    [ended] = coordination.settle(tenant)
    assert ended.status is S.FAILED
    assert service.get(Caller.operator(), tenant, b.id).status is S.CANCELLED


def test_cancelling_the_parent_cancels_its_children(database: Database, tenant: str) -> None:
    service, coordination = SessionService(database), CoordinationService(database)
    parent = service.submit(
        Caller.operator(), tenant, request([spec("A"), spec("B"), spec("C", 0)])
    )
    a, b, c = children_of(database, tenant, parent.id)
    assert claim(service, tenant) == [a.id]  # the tenant's one slot
    run(database, tenant, a.id, S.FAILED)  # a retry to come
    coordination.settle(tenant)

    cancelled = service.cancel(Caller.operator(), tenant, parent.id, "not needed")

    assert cancelled.status is S.STOPPED  # it was RUNNING
    assert service.get(Caller.operator(), tenant, b.id).status is S.CANCELLED
    assert service.get(Caller.operator(), tenant, c.id).status is S.CANCELLED
    [retried] = service.retry_due(tenant)  # A's retry is due, but it never starts again
    assert retried.id == a.id
    retried_session = service.get(Caller.operator(), tenant, a.id)
    with tenant_scope(tenant), unit_of_work(database) as uow:
        retried_session.next_attempt_at = utcnow()
        uow.sessions.save(retried_session)
    assert claim(service, tenant) == []
    coordination.settle(tenant)
    assert service.get(Caller.operator(), tenant, a.id).status is S.CANCELLED
    assert (
        service.get(Caller.operator(), tenant, a.id).status_reason == f"parent {parent.id} STOPPED"
    )
    assert task_statuses(database, tenant, [a, b, c]) == [
        TaskStatus.FAILED,
        TaskStatus.CANCELLED,
        TaskStatus.CANCELLED,
    ]


def test_a_follow_up_session_does_not_make_its_parent_a_coordinator(
    database: Database, tenant: str
) -> None:
    service = SessionService(database)
    first = service.submit(Caller.operator(), tenant, SubmitSession(title="First", prompt="Do it."))
    follow_up = service.submit(
        Caller.operator(),
        tenant,
        SubmitSession(title="Then", prompt="Do more.", parent_id=first.id),
    )
    assert claim(service, tenant) == [first.id]  # one slot: the oldest, no gating
    service.cancel(Caller.operator(), tenant, first.id)
    assert service.get(Caller.operator(), tenant, follow_up.id).status is S.PENDING
    assert claim(service, tenant) == [follow_up.id]
