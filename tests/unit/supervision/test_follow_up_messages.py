"""Follow-up messages reach the agent: queued while a session is to run or runs, each is the
agent's next turn once the current one ended well; one its session can no longer take (the turn
failed, the session ended) continues it as a new child session."""

from __future__ import annotations

from domain.caller import Caller
from domain.session import SessionStatus
from tests.unit.supervision.conftest import TENANT, World
from tests.unit.supervision.fake_agent_server import Turn
from tests.unit.supervision.test_wave_supervisor import supervise

OPERATOR = Caller.operator()


def test_a_queued_message_is_the_agents_next_turn_and_the_session_completes_after_it(
    world: World,
) -> None:
    world.server.queue(Turn(answer="wrote the code"), Turn(answer="and the tests"))
    session_id = world.submit("Write the parser.")
    first = world.service.message(OPERATOR, TENANT, session_id, "Add tests too.")
    second = world.service.message(OPERATOR, TENANT, session_id, "And a changelog line.")
    assert (first.delivery, second.delivery) == ("queued", "queued")
    world.server.queue(Turn(answer="changelog done"))

    [outcome] = supervise(world.wave(), [session_id])

    assert outcome.status == "COMPLETED"
    [agent_session] = world.server.prompted()
    assert agent_session.prompts == [
        "Write the parser.",
        "Add tests too.",
        "And a changelog line.",
    ]
    session = world.session(session_id)
    assert session.result is not None and session.result["text"] == "changelog done"
    history = world.event_types(session_id)
    assert history.count("session.message") == 2
    assert history.count("session.message_delivered") == 2
    assert world.service.list(OPERATOR, TENANT, parent_id=session_id) == []  # no new session


def test_a_message_its_session_could_not_take_continues_it_as_a_child_session(
    world: World,
) -> None:
    world.server.queue(Turn(error="the model refused"))
    session_id = world.submit("Write the parser.", max_retries=0)
    world.service.message(OPERATOR, TENANT, session_id, "Try a smaller step.")

    [outcome] = supervise(world.wave(), [session_id])

    assert outcome.status == SessionStatus.FAILED.value
    [child] = world.service.list(OPERATOR, TENANT, parent_id=session_id)
    assert child.initial_prompt.startswith("Try a smaller step.")
    assert child.metadata["follow_up"]["of"] == session_id
    assert world.server.prompted()[0].prompts == ["Write the parser."]
    again = world.service.message(OPERATOR, TENANT, session_id, "Try a smaller step.")
    assert again.delivery == "session" and again.session_id != child.id  # a new message
