"""A wave's view of its agents' load: a database snapshot, refreshed at most every interval,
plus what this wave routed since (including starts not yet recorded)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from domain.agent import Agent
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
