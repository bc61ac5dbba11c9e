"""A wave's view of its agents' load: a database snapshot, refreshed at most every interval,
plus what this wave routed since (including starts not yet recorded)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.agent import BREAKER_COOLDOWN, BREAKER_MIN_TASKS, Agent, AgentPerformance
from domain.errors import NoAgentAvailable
from domain.routing import AgentState, choose_agent
from domain.session import SessionStatus
from services.agent_load import AgentLoadView

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class Registry:
    """The database side: agents and sessions in flight per agent; counts the reads."""

    def __init__(self, agents: list[Agent], load: dict[str, int]) -> None:
        self.agents = agents
        self.load = load
        self.reads = 0

    def __call__(self) -> tuple[list[Agent], dict[str, int]]:
        self.reads += 1
        return list(self.agents), dict(self.load)


def _agent(name: str) -> Agent:
    return Agent(tenant_id="acme", name=name, server_url="http://127.0.0.1:4096", capacity=3)


def _view(registry: Registry, clock: Clock) -> AgentLoadView:
    return AgentLoadView(registry, refresh_every=timedelta(seconds=1), clock=clock)


def test_routes_within_one_interval_read_the_database_once() -> None:
    a = _agent("a")
    registry, clock = Registry([a], {a.id: 1}), Clock()
    view = _view(registry, clock)
    assert view.busy()[a.id] == 1
    view.routed(a.id)
    view.routed(a.id)
    assert view.busy()[a.id] == 3
    assert registry.reads == 1


def test_a_start_recorded_is_not_counted_twice_after_a_refresh() -> None:
    a = _agent("a")
    registry, clock = Registry([a], {a.id: 0}), Clock()
    view = _view(registry, clock)
    view.busy()
    view.routed(a.id)
    view.started(a.id)  # RUNNING committed: the database counts it from now on
    registry.load = {a.id: 1}
    clock.now += timedelta(seconds=2)
    assert view.busy()[a.id] == 1
    assert registry.reads == 2


def test_a_start_still_in_transit_at_a_refresh_stays_counted() -> None:
    a = _agent("a")
    registry, clock = Registry([a], {a.id: 0}), Clock()
    view = _view(registry, clock)
    view.busy()
    view.routed(a.id)  # create_session in flight: not in the database yet
    clock.now += timedelta(seconds=2)
    assert view.busy()[a.id] == 1
    view.started(a.id)
    registry.load = {a.id: 1}
    clock.now += timedelta(seconds=2)
    assert view.busy()[a.id] == 1


def test_a_start_that_failed_frees_its_slot() -> None:
    a = _agent("a")
    registry, clock = Registry([a], {a.id: 0}), Clock()
    view = _view(registry, clock)
    view.busy()
    view.routed(a.id)
    view.start_failed(a.id)
    assert view.busy()[a.id] == 0


def test_finished_sessions_free_slots_at_the_next_refresh() -> None:
    a, b = _agent("a"), _agent("b")
    registry, clock = Registry([a, b], {a.id: 3}), Clock()
    view = _view(registry, clock)
    assert view.busy() == {a.id: 3, b.id: 0}
    registry.load = {}
    assert view.busy()[a.id] == 3  # within the interval: the snapshot holds
    clock.now += timedelta(seconds=1)
    assert view.busy() == {a.id: 0, b.id: 0}
    assert [agent.id for agent in view.agents()] == [a.id, b.id]


def test_a_wave_sends_one_probe_to_a_half_open_agent_and_holds_the_rest() -> None:
    """The probe it routed counts as in flight, so the breaker refuses the wave's next session."""
    performance = AgentPerformance()
    for _ in range(BREAKER_MIN_TASKS):
        performance = performance.record(SessionStatus.FAILED, at=T0)
    failing = _agent("failing").model_copy(update={"performance": performance})
    registry, clock = Registry([failing], {}), Clock()
    clock.now = T0 + BREAKER_COOLDOWN
    view = _view(registry, clock)

    def states() -> list[AgentState]:
        busy = view.busy()
        return [AgentState(agent, busy[agent.id], now=clock()) for agent in view.agents()]

    assert choose_agent(states()).agent_id == failing.id
    view.routed(failing.id)
    with pytest.raises(NoAgentAvailable, match="half-open"):
        choose_agent(states())
    clock.now += timedelta(seconds=2)  # a refresh while the probe starts: still held
    with pytest.raises(NoAgentAvailable, match="half-open"):
        choose_agent(states())


def test_starts_in_transit_are_counted_per_agent_until_they_end() -> None:
    a, b = _agent("a"), _agent("b")
    view = _view(Registry([a, b], {}), Clock())
    view.routed(a.id)
    view.routed(a.id)
    view.routed(b.id)
    assert (view.in_transit(a.id), view.in_transit(b.id)) == (2, 1)
    view.started(a.id)
    view.start_failed(b.id)
    assert (view.in_transit(a.id), view.in_transit(b.id)) == (1, 0)
