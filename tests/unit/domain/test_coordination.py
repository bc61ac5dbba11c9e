"""Running a decomposed request: the rules between a coordinating parent and its children.

Contract: a request's subtasks become child sessions that inherit the request's settings unless
the subtask overrides them, each with a task and the dependency edges between the tasks; a child
may start when every prerequisite COMPLETED and can never start once one ended otherwise for
good; the parent ends COMPLETED when every child completed, PARTIALLY_COMPLETED when some did,
FAILED when none did, gathering their results and summing their metrics; a child's task follows
its session through the task state machine.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.decomposed_requests import (
    broken_prerequisite,
    child_prompt,
    gathered_result,
    parent_outcome,
    plan_decomposition,
    prerequisites_met,
    summed_metrics,
    task_steps,
)
from domain.decomposition import SubtaskSpec
from domain.metrics import SessionMetrics
from domain.quota import CostCap
from domain.session import PROMPT_MAX, Priority, Session, SessionStatus, SessionType
from domain.task import TASK_MACHINE, DependencyType, TaskStatus

S = SessionStatus
T = TaskStatus
AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def session(status: SessionStatus = S.PENDING, **fields: object) -> Session:
    defaults: dict[str, object] = {"tenant_id": "acme", "title": "t", "initial_prompt": "p"}
    return Session(**{**defaults, **fields, "status": status})


def started(status: SessionStatus, **fields: object) -> Session:
    return session(status, **{"metrics": SessionMetrics(started_at=AT), **fields})


# --- planning ---------------------------------------------------------------------------------


def test_children_inherit_the_request_unless_the_subtask_overrides() -> None:
    parent = session(
        title="Ship the login page",
        model="openai/gpt-4o",
        required_capabilities=["python"],
        max_duration_seconds=600,
        max_retries=0,
        cost_cap=CostCap(max_cost_usd=1.0),
        priority=Priority.HIGH,
        session_type=SessionType.DEBUG,
        tags=["web"],
        agent_config={"permission": "allow"},
    )
    subtasks = [
        SubtaskSpec(title="Form", prompt="Add the form."),
        SubtaskSpec(
            title="Tests",
            prompt="Write the tests.",
            depends_on=[0],
            dependency_type=DependencyType.START_TO_START,
            model="anthropic/claude",
            required_capabilities=["testing"],
            max_duration_seconds=120,
            max_retries=5,
            cost_cap=CostCap(max_tokens=1000),
        ),
    ]

    plan = plan_decomposition(parent, subtasks, child_max_retries=2, at=AT)

    form, tests = plan.children
    assert [c.parent_id for c in plan.children] == [parent.id, parent.id]
    assert (form.title, form.model, form.required_capabilities) == (
        "Form",
        "openai/gpt-4o",
        ["python"],
    )
    assert (form.max_duration_seconds, form.max_retries, form.cost_cap) == (
        600,
        2,
        CostCap(max_cost_usd=1.0),
    )
    assert (form.priority, form.session_type, form.tags) == (
        Priority.HIGH,
        SessionType.DEBUG,
        ["web"],
    )
    assert form.agent_config == {"permission": "allow"}
    assert form.initial_prompt.startswith("Add the form.\n\n")
    assert "subtask 1 of 2" in form.initial_prompt and "Ship the login page" in form.initial_prompt
    assert (tests.model, tests.required_capabilities) == ("anthropic/claude", ["testing"])
    assert (tests.max_duration_seconds, tests.max_retries) == (120, 5)
    assert tests.cost_cap == CostCap(max_tokens=1000)
    assert {c.status for c in plan.children} == {S.PENDING}
    assert {c.created_at for c in plan.children} == {AT}

    form_task, tests_task = plan.tasks
    assert (form_task.session_id, tests_task.session_id) == (form.id, tests.id)
    assert form_task.estimate is not None and form_task.description == "Add the form."
    assert [(d.task_id, d.depends_on_id, d.dependency_type) for d in plan.dependencies] == [
        (tests_task.id, form_task.id, DependencyType.START_TO_START)
    ]


def test_the_context_line_is_left_out_when_it_does_not_fit() -> None:
    prompt = "x" * (PROMPT_MAX - 10)
    assert child_prompt(prompt, "Parent", 1, 2) == prompt
    assert len(child_prompt("x" * 100, "P" * 200, 3, 9)) <= PROMPT_MAX


# --- when a child may start -------------------------------------------------------------------


def test_a_child_may_start_when_every_prerequisite_completed() -> None:
    assert prerequisites_met([])
    assert prerequisites_met([started(S.COMPLETED), started(S.COMPLETED)])
    assert not prerequisites_met([started(S.COMPLETED), started(S.RUNNING)])
    assert not prerequisites_met([started(S.FAILED, max_retries=1)])  # retrying


@pytest.mark.parametrize(
    ("prerequisite", "broken"),
    [
        (started(S.FAILED, max_retries=0), True),
        (started(S.TIMEOUT, retry_count=2, max_retries=2), True),
        (started(S.ORPHANED, max_retries=0), True),
        (started(S.STOPPED), True),
        (session(S.CANCELLED), True),
        (started(S.FAILED, max_retries=3), False),  # retries left
        (started(S.RUNNING), False),
        (session(S.PENDING), False),
        (started(S.COMPLETED), False),
    ],
)
def test_a_prerequisite_that_ended_otherwise_for_good_blocks_the_child_for_good(
    prerequisite: Session, broken: bool
) -> None:
    found = broken_prerequisite([started(S.COMPLETED), prerequisite])
    assert (found is prerequisite) is broken


# --- how the parent ends ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("children", "outcome"),
    [
        ([started(S.COMPLETED), started(S.COMPLETED)], S.COMPLETED),
        ([started(S.COMPLETED), started(S.FAILED, max_retries=0)], S.PARTIALLY_COMPLETED),
        ([started(S.COMPLETED), session(S.CANCELLED)], S.PARTIALLY_COMPLETED),
        ([started(S.STOPPED), session(S.CANCELLED)], S.FAILED),
        ([started(S.COMPLETED), started(S.FAILED, max_retries=1)], None),  # a retry is due
        ([started(S.COMPLETED), session(S.PENDING)], None),
        ([], None),
    ],
)
def test_the_parent_ends_when_every_child_is_settled(
    children: list[Session], outcome: SessionStatus | None
) -> None:
    assert parent_outcome(children) is outcome


def test_the_result_gathers_the_childrens_and_the_metrics_add_up() -> None:
    files = [{"file": "a.md", "status": "added", "additions": 1, "deletions": 0}]
    first = started(
        S.COMPLETED,
        title="A",
        result={"text": "A done", "files": files},
        metrics=SessionMetrics(started_at=AT, tokens_in=10, tokens_out=5, cost_usd=0.5, retries=1),
    )
    second = session(S.CANCELLED, title="B", status_reason="prerequisite failed")
    result = gathered_result([first, second])
    assert result["children"] == [
        {"id": first.id, "title": "A", "status": "COMPLETED", "text": "A done", "files": files},
        {
            "id": second.id,
            "title": "B",
            "status": "CANCELLED",
            "text": "prerequisite failed",
            "files": [],
        },
    ]
    assert result["files_changed"] == 1
    assert "A done" in result["text"] and "CANCELLED" in result["text"]

    base = SessionMetrics(started_at=AT - timedelta(minutes=1))
    metrics = summed_metrics(base, [first, second, first])
    assert (metrics.tokens_in, metrics.tokens_out, metrics.retries) == (20, 10, 2)
    assert metrics.cost_usd == pytest.approx(1.0)
    assert metrics.started_at == base.started_at


# --- the child's task follows its session -----------------------------------------------------


@pytest.mark.parametrize(
    ("current", "child", "ready", "steps"),
    [
        (T.PENDING, session(S.PENDING), False, []),
        (T.PENDING, session(S.PENDING), True, [T.READY]),
        (T.READY, session(S.QUEUED), True, [T.ASSIGNED]),
        (T.PENDING, started(S.RUNNING), True, [T.ASSIGNED, T.IN_PROGRESS]),
        (T.PENDING, started(S.COMPLETED), True, [T.ASSIGNED, T.IN_PROGRESS, T.COMPLETED]),
        (T.IN_PROGRESS, started(S.PAUSED), True, [T.PAUSED]),
        (T.PAUSED, started(S.RUNNING), True, [T.IN_PROGRESS]),
        (T.IN_PROGRESS, started(S.FAILED, max_retries=2), True, []),  # retrying
        (T.IN_PROGRESS, session(S.PENDING, retry_count=1), True, []),  # a retry waits
        (T.IN_PROGRESS, started(S.FAILED, max_retries=0), True, [T.FAILED]),
        (T.IN_PROGRESS, started(S.STOPPED), True, [T.FAILED]),
        (T.PENDING, session(S.CANCELLED), False, [T.CANCELLED]),
        (T.IN_PROGRESS, started(S.CANCELLED), True, [T.FAILED]),  # no way to CANCELLED
        (T.PAUSED, started(S.CANCELLED), True, [T.CANCELLED]),
        (T.COMPLETED, started(S.COMPLETED), True, []),
    ],
)
def test_the_task_walks_the_task_machine_to_its_sessions_state(
    current: TaskStatus, child: Session, ready: bool, steps: list[TaskStatus]
) -> None:
    walked = task_steps(current, child, ready)
    assert walked == steps
    for before, after in zip([current, *walked], walked, strict=False):
        assert TASK_MACHINE.allows(before, after)
