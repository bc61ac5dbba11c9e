"""A wave's writes: a state change takes its session's pending observations with it, in order,
and gives them back when it fails, for the next flush; nothing observed is lost."""

from __future__ import annotations

import pytest

from domain.errors import ConcurrentModification
from domain.session import SessionStatus
from resources.database import tenant_scope
from services.supervision.session_recorder import SessionRecorder
from tests.unit.supervision.conftest import OWNER, TENANT, World


def _recorder(world: World) -> SessionRecorder:
    return SessionRecorder(world.database, TENANT, OWNER, world.published.append, world.clock)


def test_a_state_change_writes_the_pending_observations_before_itself_and_publishes_them(
    world: World,
) -> None:
    session_id = world.submit()
    recorder = _recorder(world)
    recorder.append(session_id, "session.routed", {"agent_id": world.agent.id})
    recorder.append(session_id, "agent.tool", {"tool": "edit"})
    with tenant_scope(TENANT):
        recorder.save_transition(recorder.load(session_id), SessionStatus.RUNNING, "started")

    assert world.event_types(session_id)[-3:] == [
        "session.routed",
        "agent.tool",
        "session.status_changed",
    ]
    assert [e.event_type for e in world.published[-3:]] == world.event_types(session_id)[-3:]
    recorder.flush()  # nothing left pending
    assert len(world.event_types(session_id)) == 5  # created, claimed, and these three


def test_observations_pending_at_a_state_change_that_failed_are_written_by_the_next_flush(
    world: World,
) -> None:
    session_id = world.submit()
    recorder = _recorder(world)
    with tenant_scope(TENANT):
        stale = recorder.load(session_id)
        recorder.save_transition(recorder.load(session_id), SessionStatus.RUNNING, "elsewhere")
    recorder.append(session_id, "agent.tool", {"tool": "edit"})

    with pytest.raises(ConcurrentModification), tenant_scope(TENANT):
        recorder.save_transition(stale, SessionStatus.RUNNING, "too late")
    assert "agent.tool" not in world.event_types(session_id)
    recorder.flush()

    assert world.event_types(session_id)[-1] == "agent.tool"
