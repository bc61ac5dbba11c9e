"""The three state machines allow exactly MISSION.md's transitions and refuse every other pair.

Expectations come from `expected_tables` (transcribed by hand), never from the production tables.
Every (from, to) pair is checked on the machine and again through its entity: an allowed move
returns a `StatusChanged` event (old, new, when, why, tenant); a refused one raises
`InvalidTransition` naming both states and leaves the entity exactly as it was.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import pytest

from domain.errors import InvalidTransition
from domain.events import StatusChanged
from domain.fine_tuning import FINE_TUNING_MACHINE, FineTuningJob, FineTuningStatus
from domain.session import SESSION_MACHINE, Session, SessionStatus
from domain.state_machine import StateMachine
from domain.task import TASK_MACHINE, Task, TaskStatus
from tests.unit.domain.expected_tables import (
    FINE_TUNING_FINAL,
    FINE_TUNING_TABLE,
    SESSION_FINAL,
    SESSION_TABLE,
    TASK_FINAL,
    TASK_TABLE,
)

AT = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)

MACHINES: dict[str, tuple[StateMachine[Any], type[StrEnum], dict[str, set[str]]]] = {
    "session": (SESSION_MACHINE, SessionStatus, SESSION_TABLE),
    "task": (TASK_MACHINE, TaskStatus, TASK_TABLE),
    "fine_tuning_job": (FINE_TUNING_MACHINE, FineTuningStatus, FINE_TUNING_TABLE),
}


def _all_pairs() -> list[Any]:
    return [
        pytest.param(
            kind, current, target, target in table[current], id=f"{kind}:{current}->{target}"
        )
        for kind, (_, _, table) in MACHINES.items()
        for current in table
        for target in table
    ]


ALL_PAIRS = _all_pairs()


def make_entity(kind: str, status: str) -> Session | Task | FineTuningJob:
    if kind == "session":
        return Session(
            tenant_id="acme",
            title="fix the build",
            initial_prompt="go",
            status=SessionStatus(status),
        )
    if kind == "task":
        return Task(tenant_id="acme", title="write tests", status=TaskStatus(status))
    return FineTuningJob(
        tenant_id="acme", base_model="qwen/qwen2.5", status=FineTuningStatus(status)
    )


@pytest.mark.parametrize(
    ("kind", "count", "final"),
    [
        # 12 session states; four of them have no way out.
        ("session", 12, SESSION_FINAL),
        # 10 task states; SKIPPED is final without being reachable by a transition.
        ("task", 10, TASK_FINAL),
        # 7 job states; FAILED and CANCELLED can be retried, so only COMPLETED is final.
        ("fine_tuning_job", 7, FINE_TUNING_FINAL),
    ],
)
def test_machine_has_the_mission_states_and_derives_its_final_states(
    kind: str, count: int, final: set[str]
) -> None:
    machine, status_enum, table = MACHINES[kind]
    assert machine.name == kind
    assert len(machine.states) == len(status_enum) == len(table) == count
    assert {state.value for state in machine.states} == set(table)
    assert {state.value for state in machine.final_states} == final
    assert all(machine.is_final(status_enum(state)) == (state in final) for state in table)


@pytest.mark.parametrize(("kind", "current", "target", "allowed"), ALL_PAIRS)
def test_machine_allows_exactly_the_mission_table(
    kind: str, current: str, target: str, allowed: bool
) -> None:
    machine, status_enum, _ = MACHINES[kind]
    source, destination = status_enum(current), status_enum(target)

    assert machine.allows(source, destination) is allowed
    if allowed:
        machine.check(source, destination)
        return
    with pytest.raises(InvalidTransition) as refused:
        machine.check(source, destination)
    assert refused.value.machine == kind
    assert refused.value.current == current
    assert refused.value.target == target
    assert f"{current} -> {target}" in str(refused.value)


@pytest.mark.parametrize(("kind", "current", "target", "allowed"), ALL_PAIRS)
def test_entity_transition_records_an_event_or_changes_nothing(
    kind: str, current: str, target: str, allowed: bool
) -> None:
    entity = make_entity(kind, current)
    # Back to PENDING only through Session.retry() or, claimed, Session.release_unroutable().
    if kind == "session" and target == "PENDING":
        allowed = False
    status_enum = MACHINES[kind][1]
    before = entity.model_dump()

    if not allowed:
        with pytest.raises(InvalidTransition, match=f"{current} -> {target}"):
            entity.transition_to(status_enum(target), reason="try", at=AT)
        assert entity.model_dump() == before
        return

    event = entity.transition_to(status_enum(target), reason="operator asked", at=AT)

    assert isinstance(event, StatusChanged)
    assert event.entity_kind == kind
    assert event.event_type == f"{kind}.status_changed"
    assert event.entity_id == entity.id
    assert event.tenant_id == "acme"
    assert (event.old_status, event.new_status) == (current, target)
    assert event.at == AT
    assert event.reason == "operator asked"
    assert entity.status == target
    assert entity.status_reason == "operator asked"
    assert entity.updated_at == AT


def test_transition_without_a_time_stamps_the_event_now_in_utc() -> None:
    session = make_entity("session", "PENDING")
    event = session.transition_to(SessionStatus.QUEUED)
    assert event.at.tzinfo is not None
    assert event.at.utcoffset() == UTC.utcoffset(None)
    assert event.at == session.updated_at


def test_retrying_a_fine_tuning_job_counts_the_retry() -> None:
    job = make_entity("fine_tuning_job", "FAILED")
    assert isinstance(job, FineTuningJob)
    job.transition_to(FineTuningStatus.PENDING, reason="retry", at=AT)
    assert (job.status, job.retry_count) == (FineTuningStatus.PENDING, 1)


def test_an_event_is_immutable() -> None:
    event = make_entity("task", "PENDING").transition_to(TaskStatus.READY, at=AT)
    with pytest.raises(ValueError):
        event.new_status = "FAILED"  # type: ignore[misc]


def test_the_three_entities_share_one_transition_to() -> None:
    assert Session.transition_to is Task.transition_to is FineTuningJob.transition_to
    assert [Session.machine, Task.machine, FineTuningJob.machine] == [
        machine for machine, _, _ in MACHINES.values()
    ]
