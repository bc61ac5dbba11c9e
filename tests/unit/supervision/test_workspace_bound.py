"""With `workspaces_per_agent`, a wave keeps at most that many of an agent's sessions in
workspaces of their own at once: each is an OpenCode instance on the agent's server, and a burst
of a hundred per server wedged it (README, Performance). The others wait, their leases renewed,
and take the slot a finished session freed, its instance warm. Bounded at 8 by default (a
burst of 300 sessions completed with 8, wedged the servers unbounded and with 24).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from domain.supervision_policy import SupervisionSettings
from resources.supervision_config import SupervisionConfig
from tests.unit.supervision.conftest import World
from tests.unit.supervision.test_wave_supervisor import WORKING, supervise, until


def test_sessions_beyond_the_bound_wait_and_take_a_freed_slot(world: World, tmp_path: Path) -> None:
    world.server.queue(*[WORKING] * 4)
    ids = [world.submit(f"Task {n}") for n in range(4)]

    async def meanwhile() -> None:
        await until(lambda: len(world.server.prompted()) == 2)
        await asyncio.sleep(0.05)  # the wave had every chance to start more
        first = list(world.server.sessions.values())
        assert len(world.server.sessions) == 2, "a third workspace while two are in flight"
        await until(lambda: all(world.server.working(s.id) for s in first))
        world.server.finish(first[0].id)
        await until(lambda: len(world.server.sessions) == 3)
        third = list(world.server.sessions.values())[2]
        assert third.directory == first[0].directory, "the freed slot, its instance warm"
        world.server.finish(first[1].id)
        await until(lambda: len(world.server.sessions) == 4)
        for session in list(world.server.sessions.values())[2:]:
            await until(lambda s=session: world.server.working(s.id))
            world.server.finish(session.id)

    outcomes = supervise(
        world.wave(workspaces_dir=tmp_path, workspaces_per_agent=2), ids, meanwhile
    )

    assert [o.status for o in outcomes] == ["COMPLETED"] * 4


def test_unbounded_when_set_so(world: World, tmp_path: Path) -> None:
    world.server.queue(*[WORKING] * 4)
    ids = [world.submit(f"Task {n}") for n in range(4)]

    async def meanwhile() -> None:
        await until(lambda: len(world.server.prompted()) == 4)
        for session in list(world.server.sessions.values()):
            await until(lambda s=session: world.server.working(s.id))
            world.server.finish(session.id)

    outcomes = supervise(
        world.wave(workspaces_dir=tmp_path, workspaces_per_agent=None), ids, meanwhile
    )

    assert [o.status for o in outcomes] == ["COMPLETED"] * 4


def test_bounded_at_eight_by_default() -> None:
    assert SupervisionSettings().workspaces_per_agent == 8
    assert SupervisionConfig().workspaces_per_agent == 8
    assert SupervisionConfig().settings().workspaces_per_agent == 8
