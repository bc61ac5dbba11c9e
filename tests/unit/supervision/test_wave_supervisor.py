"""The wave supervisor's decisions, on a fake agent server, a real SQLite file and a test clock.

Contract: a session its agent finishes completes with its answer, files, tokens, usage and the
agent's performance recorded; past its deadline it is aborted and ends TIMEOUT; over its cost cap,
aborted and STOPPED; its agent server lost past `orphan_after_seconds`, ORPHANED; stopped from
outside, its supervision ends without overwriting that state; a permission request is answered
by the session's policy (allow, reject) or left to the deadline (wait); a wave with room takes
on the tenant's new sessions and a full one does not; a session taken over by another wave is
let go; a dead wave's session is adopted on its one agent session.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from domain.agent import Agent, AgentStatus
from domain.caller import Caller
from domain.checkpoint import step_checkpoint_data
from domain.errors import InvalidInput
from domain.quota import CostCap
from domain.session import SessionStatus
from resources.database import tenant_scope, unit_of_work
from services.session_outcome import SessionOutcome
from services.supervision.wave import WaveSupervisor
from services.top_up import TopUp
from tests.unit.supervision.conftest import LEASE, OWNER, TENANT, World
from tests.unit.supervision.fake_agent_server import Turn

WORKING = Turn(finishes=False)  # the agent works on until aborted (or told to finish)


async def until(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    """Return once `condition()` holds; fail the test after `timeout` seconds."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.001)


def supervise(
    wave: WaveSupervisor,
    session_ids: list[str],
    meanwhile: Callable[[], Coroutine[Any, Any, None]] | None = None,
    top_up: TopUp | None = None,
) -> list[SessionOutcome]:
    """Run the wave to its end, doing `meanwhile` while it runs."""

    async def scenario() -> list[SessionOutcome]:
        task = asyncio.create_task(wave.run(session_ids, top_up=top_up))
        if meanwhile is not None:
            await meanwhile()
        async with asyncio.timeout(5):
            return await task

    return asyncio.run(scenario())


def wave_dies_mid_session(world: World, session_id: str) -> None:
    """A wave takes the session on and is killed once its agent has the prompt (its lease
    stays, until the test's clock runs it out)."""

    async def die_mid_session() -> None:
        task = asyncio.create_task(world.wave().run([session_id]))
        await until(lambda: bool(world.server.prompted()))
        task.cancel()
        async with asyncio.timeout(5):
            await asyncio.gather(task, return_exceptions=True)

    asyncio.run(die_mid_session())


def test_a_session_its_agent_finishes_completes_with_its_result_and_usage_recorded(
    world: World,
) -> None:
    world.server.queue(
        Turn(answer="wrote it", writes=("notes.md",), tokens_in=120, tokens_out=30, cost_usd=0.02)
    )
    session_id = world.submit()

    [outcome] = supervise(world.wave(), [session_id])

    assert (outcome.status, outcome.reason) == ("COMPLETED", "agent finished")
    assert (outcome.tokens_in, outcome.tokens_out, outcome.files_changed) == (120, 30, 1)
    session = world.session(session_id)
    assert session.status is SessionStatus.COMPLETED
    assert session.result is not None and session.result["text"] == "wrote it"
    assert [f["file"] for f in session.result["files"]] == ["notes.md"]
    assert session.metrics.cost_usd == pytest.approx(0.02)
    assert session.lease_owner is None
    assert session.metadata["agent_directory"] in world.server.worktree_dirs
    with tenant_scope(TENANT), unit_of_work(world.database) as uow:
        [usage] = uow.usage.between(world.clock().date(), world.clock().date())
        performance = uow.agents.get(world.agent.id).performance
    assert (usage.sessions, usage.tokens_in, usage.tokens_out) == (1, 120, 30)
    assert (performance.tasks_total, performance.tasks_succeeded) == (1, 1)
    history = world.event_types(session_id)
    for observed in ("session.routed", "agent.prompted", "agent.tool"):
        assert observed in history
    assert history.index("agent.tool") < len(history) - 1  # written before the final state
    published = [(e.session_id, e.new_status) for e in world.published if e.new_status]
    assert published[-2:] == [(session_id, "RUNNING"), (session_id, "COMPLETED")]


def test_a_session_past_its_deadline_is_aborted_and_ends_timeout(world: World) -> None:
    world.server.queue(WORKING)
    session_id = world.submit(max_duration_seconds=60)

    async def run_past_the_deadline() -> None:
        await until(lambda: bool(world.server.prompted()))
        world.clock.advance(59)
        await asyncio.sleep(0.02)  # polls before the deadline change nothing
        assert world.session(session_id).status is SessionStatus.RUNNING
        world.clock.advance(2)

    [outcome] = supervise(world.wave(), [session_id], run_past_the_deadline)

    assert outcome.status == "TIMEOUT"
    session = world.session(session_id)
    assert session.status_reason == "ran past its max duration of 60 s"
    assert [s.aborted for s in world.server.sessions.values()] == [True]


def test_a_session_over_its_cost_cap_is_aborted_and_ends_stopped(world: World) -> None:
    world.server.queue(Turn(finishes=False, cost_usd=1.5))
    session_id = world.submit(cost_cap=CostCap(max_cost_usd=1.0))

    [outcome] = supervise(world.wave(), [session_id])

    assert outcome.status == "STOPPED"
    session = world.session(session_id)
    assert session.status_reason.startswith("cost cap reached: $1.5000")
    assert session.metrics.cost_usd == pytest.approx(1.5)
    assert [s.aborted for s in world.server.sessions.values()] == [True]


def test_a_session_whose_agent_server_stays_lost_ends_orphaned(world: World) -> None:
    world.server.queue(WORKING)
    session_id = world.submit()

    async def lose_the_server() -> None:
        await until(lambda: bool(world.server.prompted()))
        world.server.kill()
        world.clock.advance(10)
        await asyncio.sleep(0.02)  # down, but not for long enough yet
        assert world.session(session_id).status is SessionStatus.RUNNING
        world.clock.advance(6)

    [outcome] = supervise(world.wave(orphan_after_seconds=15.0), [session_id], lose_the_server)

    assert outcome.status == "ORPHANED"
    assert world.session(session_id).status_reason.startswith("agent server lost")


def test_a_lost_server_that_comes_back_takes_the_wave_s_next_sessions(world: World) -> None:
    """A lingering wave must not keep its one agent marked lost after the server is back: its
    tenant's next sessions would wait in it, `unhealthy`, for as long as it lingers."""
    world.server.queue(WORKING, Turn(answer="after the outage"))
    first = world.submit()
    later: list[str] = []

    async def lose_the_server_then_bring_it_back() -> None:
        await until(lambda: bool(world.server.prompted()))
        world.server.kill()
        world.clock.advance(16)
        await until(lambda: world.session(first).status is SessionStatus.ORPHANED)
        world.server.revive()
        later.append(world.submit("After the outage.", claim=False))
        await until(lambda: world.session(later[0]).status is SessionStatus.COMPLETED)

    outcomes = supervise(
        world.wave(orphan_after_seconds=15.0),
        [first],
        lose_the_server_then_bring_it_back,
        top_up=world.top_up(5),
    )

    assert {o.session_id: o.status for o in outcomes} == {
        first: "ORPHANED",
        later[0]: "COMPLETED",
    }


def test_a_turn_its_restarted_server_left_unfinished_ends_orphaned(world: World) -> None:
    """Idle with its answer never finished, and nothing more from the agent: the turn died
    with its server (found by the chaos suite: the session waited for its max duration)."""
    world.server.queue(WORKING)
    session_id = world.submit()

    async def restart_the_server_mid_turn() -> None:
        await until(lambda: bool(world.server.prompted()))
        world.server.restart_mid_turn(world.server.prompted()[0].id)
        await asyncio.sleep(0.05)  # idle, unfinished, but not for long enough yet
        assert world.session(session_id).status is SessionStatus.RUNNING
        world.clock.advance(31)

    [outcome] = supervise(
        world.wave(interrupted_turn_seconds=30.0), [session_id], restart_the_server_mid_turn
    )

    assert outcome.status == "ORPHANED"
    assert "turn interrupted" in world.session(session_id).status_reason


def test_a_session_stopped_from_outside_ends_its_supervision_and_keeps_that_state(
    world: World,
) -> None:
    world.server.queue(WORKING)
    session_id = world.submit()

    async def cancel_it() -> None:
        await until(lambda: bool(world.server.prompted()))
        world.service.cancel(Caller.operator(), TENANT, session_id, "not needed any more")

    # Renewals far apart: the abort, not a renewal, tells this wave it lost the session.
    wave = world.wave(renew_every=timedelta(seconds=10))
    [outcome] = supervise(wave, [session_id], cancel_it)

    assert (outcome.status, outcome.reason) == ("STOPPED", "STOPPED while running")
    session = world.session(session_id)
    assert (session.status, session.status_reason) == (
        SessionStatus.STOPPED,
        "not needed any more",
    )
    assert [s.aborted for s in world.server.sessions.values()] == [True]


def test_a_permission_request_is_rejected_by_the_sessions_policy(world: World) -> None:
    world.server.queue(Turn(asks="edit"))
    session_id = world.submit(agent_config={"permission": "reject"})

    [outcome] = supervise(world.wave(), [session_id])

    assert outcome.status == "COMPLETED"
    assert list(world.server.permission_replies.values()) == ["reject"]
    session = world.session(session_id)
    assert session.result is not None and session.result["text"] == "not allowed"
    assert "agent.permission" in world.event_types(session_id)


def test_only_an_operators_agent_profile_allows_permission_requests(world: World) -> None:
    with pytest.raises(InvalidInput, match="not for a submitter"):
        world.submit(agent_config={"permission": "allow"})
    with tenant_scope(TENANT), unit_of_work(world.database) as uow:
        agent = uow.agents.get(world.agent.id)
        agent.permission_policy = "allow"
        uow.agents.save(agent)
    world.server.queue(Turn(asks="edit"))
    session_id = world.submit(agent_config={"permission": "reject"})

    [outcome] = supervise(world.wave(), [session_id])

    assert outcome.status == "COMPLETED"
    assert list(world.server.permission_replies.values()) == ["once"]
    assert world.session(session_id).result["text"] == "done"  # type: ignore[index]


def test_every_session_is_created_confined_to_its_directory(world: World) -> None:
    session_id = world.submit()

    supervise(world.wave(), [session_id])

    assert list(world.server.session_permissions.values()) == [
        [{"permission": "external_directory", "pattern": "*", "action": "deny"}]
    ]


def test_a_permission_request_under_the_wait_policy_is_left_to_the_deadline(
    world: World,
) -> None:
    world.server.queue(Turn(asks="edit"))
    session_id = world.submit(max_duration_seconds=60)

    async def wait_past_the_deadline() -> None:
        await until(lambda: bool(world.server.asking()))
        await asyncio.sleep(0.02)
        world.clock.advance(61)

    [outcome] = supervise(world.wave(), [session_id], wait_past_the_deadline)

    assert outcome.status == "TIMEOUT"
    assert world.server.permission_replies == {}


def test_a_wave_with_room_takes_on_the_tenants_new_sessions_while_it_runs(world: World) -> None:
    world.server.queue(WORKING, Turn(answer="joined"))
    first = world.submit()
    second: list[str] = []

    async def submit_while_running() -> None:
        await until(lambda: len(world.server.prompted()) == 1)
        second.append(world.submit("A new one.", claim=False))
        await until(lambda: world.session(second[0]).status is SessionStatus.COMPLETED)
        world.server.finish(world.server.prompted()[0].id)  # the first one's turn

    outcomes = supervise(world.wave(), [first], submit_while_running, top_up=world.top_up(5))

    assert {o.session_id: o.status for o in outcomes} == {
        first: "COMPLETED",
        second[0]: "COMPLETED",
    }
    [claimed] = [
        e
        for e in world.service.events(Caller.operator(), TENANT, second[0])
        if e.new_status == "QUEUED"
    ]
    assert OWNER in claimed.reason


def test_a_full_wave_takes_on_no_new_session_until_one_ends(world: World) -> None:
    world.server.queue(WORKING)
    first = world.submit()
    second: list[str] = []

    async def submit_while_full() -> None:
        await until(lambda: len(world.server.prompted()) == 1)
        second.append(world.submit("A new one.", claim=False))
        await asyncio.sleep(0.05)  # many top-up rounds
        assert world.session(second[0]).status is SessionStatus.PENDING
        world.server.finish(world.server.prompted()[0].id)

    outcomes = supervise(world.wave(), [first], submit_while_full, top_up=world.top_up(1))

    assert [o.status for o in outcomes] == ["COMPLETED", "COMPLETED"]
    assert [o.session_id for o in outcomes] == [first, second[0]]


def test_a_session_taken_over_by_another_wave_is_let_go(world: World) -> None:
    world.server.queue(WORKING)
    session_id = world.submit()

    async def take_it_over() -> None:
        await until(lambda: bool(world.server.prompted()))
        with tenant_scope(TENANT), unit_of_work(world.database) as uow:
            session = uow.sessions.get(session_id)
            session.lease_owner = "wave-2"
            uow.sessions.save(session)

    [outcome] = supervise(world.wave(), [session_id], take_it_over)

    assert (outcome.status, outcome.reason) == ("RUNNING", "taken over: RUNNING")
    session = world.session(session_id)
    assert (session.status, session.lease_owner) == (SessionStatus.RUNNING, "wave-2")


def test_a_dead_waves_session_is_adopted_on_its_one_agent_session(world: World) -> None:
    world.server.queue(WORKING)
    session_id = world.submit()

    wave_dies_mid_session(world, session_id)
    world.clock.advance(61)  # its lease ran out

    async def finish_the_turn() -> None:
        await until(lambda: "session.adopted" in world.event_types(session_id))
        world.server.finish(world.server.prompted()[0].id)

    [outcome] = supervise(world.wave(owner="wave-2"), [session_id], finish_the_turn)

    assert outcome.status == "COMPLETED"
    assert len(world.server.sessions) == 1
    assert world.session(session_id).retry_count == 0


def test_an_adopted_session_whose_turn_died_with_its_server_ends_orphaned(world: World) -> None:
    """Its wave and its server died mid-turn: the restarted server lists the session idle, its
    answer never finished, and says nothing more. The adopting wave asks the server whether the
    turn is at work (found by the chaos suite: the session stayed RUNNING until its deadline)."""
    world.server.queue(WORKING)
    session_id = world.submit()

    wave_dies_mid_session(world, session_id)
    world.server.restart_mid_turn(world.server.prompted()[0].id)  # its idle reaches no wave
    world.clock.advance(61)  # the dead wave's lease ran out

    async def wait_past_the_interrupted_turn() -> None:
        await until(lambda: "session.adopted" in world.event_types(session_id))
        await asyncio.sleep(0.05)
        assert world.session(session_id).status is SessionStatus.RUNNING
        world.clock.advance(31)

    [outcome] = supervise(
        world.wave(owner="wave-2", interrupted_turn_seconds=30.0),
        [session_id],
        wait_past_the_interrupted_turn,
    )

    assert outcome.status == "ORPHANED"
    assert "turn interrupted" in world.session(session_id).status_reason


def test_an_adopted_session_at_work_on_its_server_is_followed_to_its_end(world: World) -> None:
    """The same adoption while the turn is at work (busy, silent for longer than the wait for an
    interrupted turn, as in a long tool call): followed, not orphaned."""
    world.server.queue(WORKING)
    session_id = world.submit()

    wave_dies_mid_session(world, session_id)
    world.clock.advance(61)

    async def a_long_silent_step_then_the_end() -> None:
        await until(lambda: "session.adopted" in world.event_types(session_id))
        world.clock.advance(31)
        await asyncio.sleep(0.05)
        assert world.session(session_id).status is SessionStatus.RUNNING
        world.server.finish(world.server.prompted()[0].id)

    [outcome] = supervise(
        world.wave(owner="wave-2", interrupted_turn_seconds=30.0),
        [session_id],
        a_long_silent_step_then_the_end,
    )

    assert outcome.status == "COMPLETED"


def test_a_session_whose_agent_session_is_gone_is_orphaned_when_adopted(world: World) -> None:
    world.server.queue(WORKING)
    session_id = world.submit()

    wave_dies_mid_session(world, session_id)
    world.server.sessions.clear()  # the server restarted without it
    world.clock.advance(61)

    [outcome] = supervise(world.wave(owner="wave-2"), [session_id])

    assert outcome.status == "ORPHANED"
    assert world.session(session_id).status_reason.startswith("agent session lost")


def test_the_wave_closes_its_clients_when_it_ends(world: World) -> None:
    session_id = world.submit()
    supervise(world.wave(), [session_id])
    assert world.servers.clients and all(client.closed for client in world.servers.clients)
    assert world.server.streams == []


def _add_rust_agent(world: World, capacity: int = 5) -> str:
    with tenant_scope(TENANT), unit_of_work(world.database) as uow:
        agent = uow.agents.add(
            Agent(
                tenant_id=TENANT,
                name="rust-agent",
                server_url="http://agent-rust.test",
                capabilities=["rust"],
                capacity=capacity,
            )
        )
    return agent.id


def _set_agent_status(world: World, agent_id: str, status: AgentStatus) -> None:
    with tenant_scope(TENANT), unit_of_work(world.database) as uow:
        agent = uow.agents.get_for_update(agent_id)
        agent.change_status(status)
        uow.agents.save(agent)


def test_a_claimed_session_no_agent_offers_any_more_gives_its_slot_back(world: World) -> None:
    rust = _add_rust_agent(world)
    session_id = world.submit("Port it to Rust.", required_capabilities=["rust"])
    assert world.session(session_id).status is SessionStatus.QUEUED
    _set_agent_status(world, rust, AgentStatus.INACTIVE)  # after the claim, before routing

    [outcome] = supervise(world.wave(), [session_id])

    assert outcome.status == "PENDING"
    session = world.session(session_id)
    assert (session.status, session.status_reason) == (
        SessionStatus.PENDING,
        "no agent offers rust",
    )
    assert session.unroutable_since is not None and session.lease_owner is None
    assert world.server.sessions == {}  # never started anywhere


def test_a_session_whose_agent_is_only_full_waits_for_it_in_the_wave(world: World) -> None:
    _add_rust_agent(world, capacity=1)  # the one agent that serves it: busy, not gone
    busy = world.submit("Busy.", required_capabilities=["rust"])
    waiting = world.submit("Wait.", required_capabilities=["rust"])
    world.servers.server("http://agent-rust.test").queue(WORKING)

    async def scenario() -> None:
        wave = world.wave()
        task = asyncio.create_task(wave.run([busy, waiting]))
        await until(lambda: "session.waiting" in world.event_types(waiting))
        assert world.session(waiting).status is SessionStatus.QUEUED
        assert world.session(waiting).lease_owner == OWNER
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(scenario())


def test_each_completed_agent_step_records_a_checkpoint_with_its_text_files_and_tokens(
    world: World,
) -> None:
    world.server.queue(Turn(answer="wrote the notes", writes=("notes.md",), tokens_in=50))
    session_id = world.submit()

    [outcome] = supervise(world.wave(), [session_id])

    assert outcome.status == "COMPLETED"
    [checkpoint] = world.service.checkpoints(Caller.operator(), TENANT, session_id)
    assert checkpoint.sequence == 1
    assert checkpoint.data["text"] == "wrote the notes"
    assert checkpoint.data["files_changed"] == ["notes.md"]
    assert (checkpoint.data["attempt"], checkpoint.data["tokens_in"]) == (0, 50)
    [step] = [
        event
        for event in world.service.events(Caller.operator(), TENANT, session_id)
        if event.event_type == "agent.step"
    ]
    assert step.data == {**checkpoint.data, "checkpoint": 1}  # what it said, for live readers


def test_a_retried_attempt_starts_from_the_last_checkpoint_of_the_one_before(
    world: World,
) -> None:
    session_id = world.submit("Write a.py and b.py.")
    with tenant_scope(TENANT), unit_of_work(world.database) as uow:
        # The first attempt got one step done, then failed.
        step = step_checkpoint_data(
            attempt=0,
            message_id="msg-1",
            text="half of it",
            files_changed=["a.py"],
            tokens_in=10,
            tokens_out=5,
        )
        uow.sessions.add_next_checkpoint(session_id, step, world.clock())
        session = uow.sessions.get(session_id)
        uow.sessions.save_transition(
            session, session.transition_to(SessionStatus.FAILED, "model error", world.clock())
        )
        uow.sessions.save_transition(session, session.retry(at=world.clock()))
    world.clock.advance(3600)  # past the backoff
    world.service.claim(TENANT, session_id, OWNER, LEASE)
    world.server.queue(Turn(answer="the rest", writes=("b.py",)))

    [outcome] = supervise(world.wave(), [session_id])

    assert outcome.status == "COMPLETED"
    [agent_session] = world.server.prompted()
    prompt = agent_session.prompts[0]
    assert prompt.startswith("Write a.py and b.py.\n")
    assert "Attempt 2" in prompt and "checkpoint #1" in prompt
    assert "a.py" in prompt and "half of it" in prompt
    latest = world.service.checkpoints(Caller.operator(), TENANT, session_id)[-1]
    assert (latest.sequence, latest.data["attempt"]) == (2, 1)


def test_a_step_that_ends_in_an_error_records_no_checkpoint(world: World) -> None:
    world.server.queue(Turn(answer="", writes=("a.py",), error="invalid api key"))
    session_id = world.submit()

    [outcome] = supervise(world.wave(), [session_id])

    assert outcome.status == "FAILED"
    assert "invalid api key" in outcome.reason
    assert world.service.checkpoints(Caller.operator(), TENANT, session_id) == []


def test_a_slow_server_does_not_hold_up_the_sessions_routed_to_the_others(world: World) -> None:
    slow = world.servers.server("http://agent-slow.test")
    slow.worktree_gate = asyncio.Event()  # its worktree takes until the test lets it
    with tenant_scope(TENANT), unit_of_work(world.database) as uow:
        uow.agents.add(
            Agent(tenant_id=TENANT, name="slow", server_url=slow.url, capabilities=["slow"])
        )
    world.server.queue(Turn(answer="done fast"))
    session_id = world.submit()

    async def scenario() -> list[SessionOutcome]:
        task = asyncio.create_task(world.wave().run([session_id]))
        await until(lambda: world.session(session_id).status is SessionStatus.COMPLETED)
        slow.worktree_gate.set()  # only now may the slow server's link be made
        async with asyncio.timeout(5):
            return await task

    [outcome] = asyncio.run(scenario())
    assert outcome.status == "COMPLETED"
    assert world.server.prompted() and not slow.prompted()


@pytest.mark.parametrize("slow_part", ["worktree_gate", "stream_gate"])
def test_sessions_wait_for_a_linking_agent_rather_than_queue_on_a_busy_linked_one(
    world: World, slow_part: str
) -> None:
    """While an agent is still being linked (its worktree made, its event stream connected), a
    linked one takes only the sessions it can start at once; the others go to whichever agent
    can start them first (here the one linked later), not into the busy agent's queue. (A
    300-session burst put 125 sessions on each of two servers and 50 on the third while one
    agent's stream connected first: the crowded servers' prompts took up to 14 s.)"""
    slow = world.servers.server("http://agent-slow.test")
    gate = asyncio.Event()
    setattr(slow, slow_part, gate)
    world.server.create_gate = asyncio.Event()  # the linked agent's one start does not finish
    with tenant_scope(TENANT), unit_of_work(world.database) as uow:
        uow.agents.add(Agent(tenant_id=TENANT, name="slow", server_url=slow.url))
    first, second = world.submit("One."), world.submit("Two.")

    async def scenario() -> None:
        task = asyncio.create_task(world.wave(starts_per_agent=1).run([first, second]))
        await until(lambda: any("session.routed" in world.event_types(s) for s in (first, second)))
        await asyncio.sleep(0.05)  # the other session is not put in the busy agent's queue
        routed = [s for s in (first, second) if "session.routed" in world.event_types(s)]
        assert len(routed) == 1
        gate.set()  # the slow agent links: the other session starts there
        await until(lambda: len(slow.prompted()) == 1)
        world.server.create_gate.set()
        await until(lambda: len(world.server.prompted()) == 1)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(scenario())


def test_a_wave_claims_new_sessions_at_most_once_per_interval_however_fast_its_own_end(
    world: World,
) -> None:
    """Each claim round is two transactions; a wave of a hundred sessions ending within a few
    seconds must not spend one round per ending (found in the 300-session burst's profile)."""
    for _ in range(4):
        world.server.queue(WORKING)
    session_ids = [world.submit() for _ in range(4)]
    top_up = replace(world.top_up(4), every_seconds=30.0, linger_seconds=0.0)
    rounds: list[int] = []

    def counted(room: int, within_seconds: float) -> list[str]:
        rounds.append(room)
        return top_up.claim(room, within_seconds)

    async def finish_them_one_by_one() -> None:
        await until(lambda: len(world.server.prompted()) == 4)
        for state in world.server.prompted():
            world.server.finish(state.id)
            await asyncio.sleep(0.02)  # each ending wakes the wave on its own

    outcomes = supervise(
        world.wave(),
        session_ids,
        finish_them_one_by_one,
        top_up=replace(top_up, claim=counted),
    )

    assert [o.status for o in outcomes] == ["COMPLETED"] * 4
    assert rounds == [4]  # once it is empty (full until then; each ending alone does not claim)
