"""The circuit breaker of an agent: CLOSED -> OPEN on too many recent failures; after the
cool-down HALF_OPEN admits exactly one probe; the probe's failure reopens it for a new cool-down,
its success closes it. Times are given explicitly (an injected clock), never slept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from domain.agent import (
    BREAKER_COOLDOWN,
    BREAKER_MIN_TASKS,
    Agent,
    AgentPerformance,
    BreakerState,
)
from domain.routing import AgentState, choose_agent, refusal_reason
from domain.session import SessionStatus

T0 = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)


def opened_at(at: datetime) -> AgentPerformance:
    """A breaker that opened at `at`: five failures in a row."""
    performance = AgentPerformance()
    for _ in range(BREAKER_MIN_TASKS):
        performance = performance.record(SessionStatus.FAILED, at=at)
    return performance


def failing_agent(performance: AgentPerformance) -> Agent:
    return Agent(
        tenant_id="acme",
        name="failing",
        server_url="http://127.0.0.1:4096",
        performance=performance,
    )


def test_five_failures_open_the_breaker_at_the_last_one() -> None:
    performance = opened_at(T0)
    assert performance.breaker_opened_at == T0
    assert performance.breaker_state(T0) is BreakerState.OPEN


def test_an_open_breaker_refuses_every_session_during_its_cool_down() -> None:
    performance = opened_at(T0)
    assert performance.breaker_refuses(T0 + BREAKER_COOLDOWN - SECOND, in_flight=0)
    reason = refusal_reason(
        AgentState(failing_agent(performance), 0, now=T0 + BREAKER_COOLDOWN - SECOND), set()
    )
    assert reason == "circuit open (success 0%)"


def test_after_the_cool_down_half_open_admits_one_probe_when_none_is_in_flight() -> None:
    performance = opened_at(T0)
    after = T0 + BREAKER_COOLDOWN
    assert performance.breaker_state(after) is BreakerState.HALF_OPEN
    assert not performance.breaker_refuses(after, in_flight=0)


def test_half_open_refuses_a_second_session_while_the_probe_is_in_flight() -> None:
    agent = failing_agent(opened_at(T0))
    after = T0 + BREAKER_COOLDOWN + SECOND
    assert agent.performance.breaker_refuses(after, in_flight=1)
    reason = refusal_reason(AgentState(agent, 1, now=after), set())
    assert reason == "circuit half-open (its one probe is in flight)"


def test_routing_two_sessions_in_a_row_sends_only_one_probe() -> None:
    """The wave counts the probe it routed as in flight: the next session is refused."""
    agent = failing_agent(opened_at(T0))
    after = T0 + BREAKER_COOLDOWN
    first = choose_agent([AgentState(agent, 0, now=after)])
    assert first.agent_id == agent.id
    second = refusal_reason(AgentState(agent, 1, now=after), set())
    assert second is not None and "half-open" in second


def test_a_failed_probe_reopens_the_breaker_for_a_new_cool_down() -> None:
    probe_failed_at = T0 + BREAKER_COOLDOWN + 5 * SECOND
    reopened = opened_at(T0).record(SessionStatus.FAILED, at=probe_failed_at)
    assert reopened.breaker_opened_at == probe_failed_at
    assert reopened.breaker_state(probe_failed_at + BREAKER_COOLDOWN - SECOND) is BreakerState.OPEN
    assert reopened.breaker_refuses(probe_failed_at + BREAKER_COOLDOWN - SECOND, in_flight=0)
    later = probe_failed_at + BREAKER_COOLDOWN
    assert reopened.breaker_state(later) is BreakerState.HALF_OPEN


def test_a_successful_probe_closes_the_breaker() -> None:
    closed = opened_at(T0).record(SessionStatus.COMPLETED, at=T0 + BREAKER_COOLDOWN)
    assert closed.breaker_state(T0 + BREAKER_COOLDOWN) is BreakerState.CLOSED
    assert closed.breaker_opened_at is None and not closed.breaker_open
    assert not closed.breaker_refuses(T0 + BREAKER_COOLDOWN, in_flight=3)
    assert closed.tasks_total == BREAKER_MIN_TASKS + 1 and closed.tasks_succeeded == 1


def test_a_closed_breaker_needs_five_new_results_before_it_can_open_again() -> None:
    closed = opened_at(T0).record(SessionStatus.COMPLETED, at=T0 + BREAKER_COOLDOWN)
    later = T0 + 2 * BREAKER_COOLDOWN
    for _ in range(3):
        closed = closed.record(SessionStatus.FAILED, at=later)
    assert closed.breaker_state(later) is BreakerState.CLOSED


def test_results_that_land_during_the_cool_down_do_not_move_it() -> None:
    """Sessions that were running when the breaker opened may end meanwhile: a late success does
    not close it early, a late failure does not restart its cool-down."""
    performance = opened_at(T0)
    late_success = performance.record(SessionStatus.COMPLETED, at=T0 + SECOND)
    late_failure = performance.record(SessionStatus.FAILED, at=T0 + SECOND)
    for after in (late_success, late_failure):
        assert after.breaker_opened_at == T0
        assert after.breaker_state(T0 + SECOND) is BreakerState.OPEN
    assert late_success.tasks_total == BREAKER_MIN_TASKS + 1


def test_a_partially_completed_probe_closes_the_breaker() -> None:
    """Half a success is still an answer from a working agent."""
    closed = opened_at(T0).record(SessionStatus.PARTIALLY_COMPLETED, at=T0 + BREAKER_COOLDOWN)
    assert closed.breaker_state(T0 + BREAKER_COOLDOWN) is BreakerState.CLOSED
