"""Decomposed requests end to end: the retry and dispatch sensors, `session_wave` runs executed in
process, two real OpenCode servers and the scripted model, a real SQLite database.

Contract: a request the decomposer splits into A -> B -> C runs its children one after another
in dependency order (each starts only after the one before completed) and its coordinating
parent, never run on an agent itself, ends COMPLETED with the three results gathered; when the
middle child fails for good, the last one is CANCELLED without ever running and the parent ends
PARTIALLY_COMPLETED.
"""

from __future__ import annotations

from datetime import datetime

from domain.caller import Caller
from domain.decomposition import SubtaskSpec
from domain.session import Session, SessionStatus
from domain.task import TaskStatus
from resources.database import tenant_scope, unit_of_work
from services.session_service import SubmitSession
from tests.e2e import test_session_waves as waves
from tests.e2e.test_session_waves import TENANT, World, run_until_final, statuses

S = SessionStatus
# The fixtures: two OpenCode servers, their agents' ids and the slots' directory (per module),
# a fresh world per test.
servers = waves.servers
agent_ids = waves.agent_ids
workspaces_dir = waves.workspaces_dir
world = waves.world


def children(world: World, parent_id: str) -> list[Session]:
    return sorted(
        world.service.list(Caller.operator(), TENANT, parent_id=parent_id), key=lambda s: s.id
    )


def moments(world: World, session_id: str, status: str) -> list[datetime]:
    return [
        e.at
        for e in world.service.events(Caller.operator(), TENANT, session_id)
        if e.new_status == status
    ]


def task_statuses(world: World, sessions: list[Session]) -> list[TaskStatus]:
    with tenant_scope(TENANT), unit_of_work(world.database) as uow:
        return [uow.tasks.list(session_id=session.id)[0].status for session in sessions]


def test_a_decomposed_request_runs_its_subtasks_in_order_and_gathers_their_results(
    world: World,
) -> None:
    prompt = (
        "Ship the greeting docs.\n"
        '1. [script:write path=docs/a.md content="A\\n" reply="A written"] Write part A\n'
        '2. [script:text reply="A reviewed"] Review part A\n'
        '3. [script:write path=docs/c.md content="C\\n" reply="C written"] Write part C\n'
    )
    parent_id = world.service.submit(
        Caller.operator(),
        TENANT,
        SubmitSession(title="Ship the greeting docs", prompt=prompt, decompose=True),
    ).id
    a, b, c = children(world, parent_id)
    assert a.initial_prompt.startswith("[script:write path=docs/a.md")

    run_until_final(world, parent_id)

    parent = world.session(parent_id)
    assert parent.status is S.COMPLETED, parent.status_reason
    assert statuses(world, parent_id) == ["PENDING", "RUNNING", "COMPLETED"]
    assert parent.agent_id is None and parent.agent_session_id is None  # never ran on an agent
    a, b, c = (world.session(child.id) for child in (a, b, c))
    for child in (a, b, c):
        assert statuses(world, child.id) == ["PENDING", "QUEUED", "RUNNING", "COMPLETED"]
    # Each child started only after the one before it completed.
    [a_done], [b_started], [b_done], [c_started] = (
        moments(world, a.id, "COMPLETED"),
        moments(world, b.id, "RUNNING"),
        moments(world, b.id, "COMPLETED"),
        moments(world, c.id, "RUNNING"),
    )
    assert a_done <= b_started < b_done <= c_started

    assert parent.result is not None
    gathered = parent.result["children"]
    assert [(r["id"], r["status"]) for r in gathered] == [
        (a.id, "COMPLETED"),
        (b.id, "COMPLETED"),
        (c.id, "COMPLETED"),
    ]
    assert [r["text"] for r in gathered] == ["A written", "A reviewed", "C written"]
    assert [[f["file"] for f in r["files"]] for r in gathered] == [["docs/a.md"], [], ["docs/c.md"]]
    assert parent.result["files_changed"] == 2
    assert parent.metrics.tokens_in == sum(child.metrics.tokens_in for child in (a, b, c)) > 0
    assert parent.metrics.cost_usd > 0
    assert task_statuses(world, [a, b, c]) == [TaskStatus.COMPLETED] * 3


def test_a_subtask_failing_for_good_cancels_the_next_and_the_parent_partly_completes(
    world: World,
) -> None:
    subtasks = [
        SubtaskSpec(title="A", prompt='[script:text reply="A done"] Do part A.'),
        SubtaskSpec(
            title="B", prompt="[script:fail-401] Do part B.", depends_on=[0], max_retries=0
        ),
        SubtaskSpec(title="C", prompt='[script:text reply="C done"] Do part C.', depends_on=[1]),
    ]
    parent_id = world.service.submit(
        Caller.operator(),
        TENANT,
        SubmitSession(title="Three parts", prompt="Do all three.", subtasks=subtasks),
    ).id
    a, b, c = children(world, parent_id)

    run_until_final(world, parent_id)

    parent = world.session(parent_id)
    assert parent.status is S.PARTIALLY_COMPLETED, parent.status_reason
    assert statuses(world, parent_id) == ["PENDING", "RUNNING", "PARTIALLY_COMPLETED"]
    assert statuses(world, a.id) == ["PENDING", "QUEUED", "RUNNING", "COMPLETED"]
    assert statuses(world, b.id) == ["PENDING", "QUEUED", "RUNNING", "FAILED"]
    assert statuses(world, c.id) == ["PENDING", "CANCELLED"]  # never ran
    c = world.session(c.id)
    assert c.status_reason == f"prerequisite {b.id} (B) ended FAILED"
    assert parent.result is not None
    assert [(r["status"], r["text"]) for r in parent.result["children"]] == [
        ("COMPLETED", "A done"),
        ("FAILED", world.session(b.id).status_reason),
        ("CANCELLED", c.status_reason),
    ]
    assert parent.error == {"reason": parent.status_reason}
    assert parent.status_reason.startswith("1 of 3 subtasks completed")
    assert task_statuses(world, [a, b, c]) == [
        TaskStatus.COMPLETED,
        TaskStatus.FAILED,
        TaskStatus.CANCELLED,
    ]
