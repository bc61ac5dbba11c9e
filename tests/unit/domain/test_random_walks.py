"""Random walks through each state machine agree with MISSION.md's table at every step.

At each step the walk asks for some state, allowed or not (biased towards allowed ones so the
walks get deep). Allowed moves succeed and their events chain (each event's old status is the
previous event's new one); refused moves raise `InvalidTransition` and change nothing; final
states never move. Sessions go back to PENDING only through `retry()`, at most `max_retries`
times, or, claimed (QUEUED), through `release_unroutable()`, which counts no retry.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.errors import InvalidTransition, RetriesExhausted
from domain.events import StatusChanged
from domain.fine_tuning import FineTuningJob, FineTuningStatus
from domain.session import Session, SessionStatus
from domain.task import Task, TaskStatus
from tests.unit.domain.expected_tables import (
    FINE_TUNING_FINAL,
    FINE_TUNING_TABLE,
    SESSION_FINAL,
    SESSION_RETRYABLE,
    SESSION_TABLE,
    TASK_FINAL,
    TASK_TABLE,
)

START = datetime(2025, 1, 1, tzinfo=UTC)
STEPS = 40
WALKS = settings(max_examples=200, deadline=None)


def _next_target(data: st.DataObject, table: dict[str, set[str]], current: str) -> str:
    allowed = sorted(table[current])
    if allowed and data.draw(st.booleans(), label="prefer an allowed move"):
        return data.draw(st.sampled_from(allowed), label="allowed target")
    return data.draw(st.sampled_from(sorted(table)), label="any target")


def _assert_chain(events: list[StatusChanged], first_old: str, last_new: str) -> None:
    previous = first_old
    for event in events:
        assert event.old_status == previous
        previous = event.new_status
    assert previous == last_new


@WALKS
@given(data=st.data(), max_retries=st.integers(min_value=0, max_value=3))
def test_session_walk_follows_the_table(data: st.DataObject, max_retries: int) -> None:
    session = Session(tenant_id="acme", title="walk", initial_prompt="go", max_retries=max_retries)
    events: list[StatusChanged] = []
    releases = 0

    for step in range(STEPS):
        current = session.status.value
        target = _next_target(data, SESSION_TABLE, current)
        at = START + timedelta(minutes=step)
        before = session.model_dump()
        if current in SESSION_RETRYABLE and target == "PENDING":
            if session.retry_count < max_retries:
                events.append(session.retry(at=at))
            else:
                with pytest.raises(RetriesExhausted):
                    session.retry(at=at)
                assert session.model_dump() == before
        elif current == "QUEUED" and target == "PENDING":
            with pytest.raises(InvalidTransition):  # a plain transition may not: only a release
                session.transition_to(SessionStatus.PENDING, at=at)
            events.append(session.release_unroutable("no agent offers rust", at=at))
            releases += 1
        elif target in SESSION_TABLE[current]:
            events.append(session.transition_to(SessionStatus(target), at=at))
        else:
            with pytest.raises(InvalidTransition):
                session.transition_to(SessionStatus(target), at=at)
            assert session.model_dump() == before
            if current in SESSION_FINAL:
                assert session.status.value == current
        assert session.retry_count <= max_retries
        assert session.metrics.retries == session.retry_count

    _assert_chain(events, "PENDING", session.status.value)
    assert sum(event.new_status == "PENDING" for event in events) == session.retry_count + releases


@WALKS
@given(data=st.data())
def test_task_walk_follows_the_table(data: st.DataObject) -> None:
    task = Task(tenant_id="acme", title="walk")
    events: list[StatusChanged] = []

    for step in range(STEPS):
        current = task.status.value
        target = _next_target(data, TASK_TABLE, current)
        before = task.model_dump()
        try:
            event = task.transition_to(TaskStatus(target), at=START + timedelta(minutes=step))
        except InvalidTransition:
            assert target not in TASK_TABLE[current]
            assert task.model_dump() == before
            continue
        assert target in TASK_TABLE[current]
        assert current not in TASK_FINAL
        events.append(event)

    _assert_chain(events, "PENDING", task.status.value)


@WALKS
@given(data=st.data())
def test_fine_tuning_walk_follows_the_table(data: st.DataObject) -> None:
    job = FineTuningJob(tenant_id="acme", base_model="qwen/qwen2.5")
    events: list[StatusChanged] = []

    for step in range(STEPS):
        current = job.status.value
        target = _next_target(data, FINE_TUNING_TABLE, current)
        before = job.model_dump()
        try:
            event = job.transition_to(FineTuningStatus(target), at=START + timedelta(minutes=step))
        except InvalidTransition:
            assert target not in FINE_TUNING_TABLE[current]
            assert job.model_dump() == before
            continue
        assert target in FINE_TUNING_TABLE[current]
        assert current not in FINE_TUNING_FINAL
        events.append(event)

    _assert_chain(events, "PENDING", job.status.value)
    assert sum(event.new_status == "PENDING" for event in events) == job.retry_count
