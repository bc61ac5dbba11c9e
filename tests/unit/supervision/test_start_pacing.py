"""An agent's starts in workspaces of their own are paced to its server's set-up of each one.

A session's first prompt in a directory new to its OpenCode server is where the server sets up
its instance for that directory (seconds of CPU, tens of MB kept). So such a start holds one of
the agent's `starts_per_agent` until the agent is seen answering (its assistant message), not only
until the prompt is sent: a burst of hundreds of sessions no longer asks a server to set up
hundreds of instances at once (which, measured, left it unable to answer its health checks and
its sessions ORPHANED). A session still working after its first answer frees its start for the
next; one whose agent stays silent frees it after `FIRST_TURN_HOLD_SECONDS` at most.

Sessions in their tenant's worktree on the server (`session_workspaces: false`) have nothing set
up per start (the worktree's instance is one for all of them), so their starts are not paced:
the agent's capacity bounds them. Paced, a 300-session burst waited for starts most of its
submit -> prompt latency (README, Performance: p50 15.7 s paced against 8.3 s not, the direct
floor's 7.0-9.7 s).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from domain.session import SessionStatus
from services.supervision.followed_session import FIRST_TURN_HOLD_SECONDS
from tests.unit.supervision.conftest import World
from tests.unit.supervision.fake_agent_server import Turn
from tests.unit.supervision.test_wave_supervisor import WORKING, supervise, until


def test_a_start_is_held_until_the_agent_answers_then_frees_for_the_next(
    world: World, tmp_path: Path
) -> None:
    world.server.queue(WORKING, WORKING, Turn(), Turn(), Turn())
    world.server.answer_gate = asyncio.Event()  # no answer yet: first turns still setting up
    ids = [world.submit(f"Task {n}") for n in range(5)]

    async def meanwhile() -> None:
        await until(lambda: len(world.server.prompted()) == 2)
        await asyncio.sleep(0.05)  # the wave had every chance to start more
        assert len(world.server.sessions) == 2, "a third start while two first turns set up"
        world.server.answer_gate.set()  # the first two answer (and work on), so others start
        await until(lambda: len(world.server.prompted()) == 5)
        for working in list(world.server.sessions)[:2]:
            await until(lambda w=working: world.server.working(w))
            world.server.finish(working)

    outcomes = supervise(world.wave(workspaces_dir=tmp_path, starts_per_agent=2), ids, meanwhile)

    assert [o.status for o in outcomes] == ["COMPLETED"] * 5


def test_starts_in_the_tenants_worktree_are_not_held(world: World) -> None:
    world.server.queue(WORKING, WORKING, WORKING)
    world.server.answer_gate = asyncio.Event()  # no agent has answered yet
    ids = [world.submit(f"Task {n}") for n in range(3)]

    async def meanwhile() -> None:
        await until(lambda: len(world.server.prompted()) == 3)
        directories = {s.directory for s in world.server.sessions.values()}
        assert len(directories) == 1, "all in the tenant's worktree: one instance"
        world.server.answer_gate.set()
        for working in list(world.server.sessions):
            await until(lambda w=working: world.server.working(w))
            world.server.finish(working)

    outcomes = supervise(world.wave(starts_per_agent=1), ids, meanwhile)

    assert [o.status for o in outcomes] == ["COMPLETED"] * 3


def test_a_silent_first_turn_frees_its_start_after_the_hold(world: World, tmp_path: Path) -> None:
    world.server.queue(WORKING, Turn())
    world.server.answer_gate = asyncio.Event()
    ids = [world.submit("Silent"), world.submit("Next")]

    async def meanwhile() -> None:
        await until(lambda: len(world.server.prompted()) == 1)
        await asyncio.sleep(0.02)
        assert len(world.server.sessions) == 1
        world.clock.advance(FIRST_TURN_HOLD_SECONDS + 1)
        await until(lambda: len(world.server.prompted()) == 2)
        world.server.answer_gate.set()
        await until(lambda: world.session(ids[1]).status is SessionStatus.COMPLETED)
        silent = next(iter(world.server.sessions))
        await until(lambda: world.server.working(silent))
        world.server.finish(silent)

    outcomes = supervise(world.wave(workspaces_dir=tmp_path, starts_per_agent=1), ids, meanwhile)

    assert [o.status for o in outcomes] == ["COMPLETED", "COMPLETED"]


def test_a_start_that_fails_frees_its_slot_and_the_next_session_starts(
    world: World, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    world.server.queue(Turn())
    world.server.refused_creates = 1
    first, second = world.submit("Refused"), world.submit("Next")

    outcomes = supervise(world.wave(workspaces_dir=tmp_path, starts_per_agent=1), [first, second])

    assert world.session(first).status_reason.startswith("agent server error")
    assert [o.status for o in outcomes] == ["FAILED", "COMPLETED"]
    crashed = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert crashed == [], "a failed start is an outcome, not a crash of its supervision"
