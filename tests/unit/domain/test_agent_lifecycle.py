"""An agent's lifecycle (ACTIVE, DRAINING, INACTIVE) and its performance tier: routing sends new
sessions only to ACTIVE agents; a new agent is NEW (no success rate yet), scored neutrally;
PARTIALLY_COMPLETED counts as half a success."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from domain.agent import Agent, AgentPerformance, AgentStatus, AgentTier
from domain.errors import InvalidTransition
from domain.routing import TIER_WEIGHT, AgentState, choose_agent, refusal_reason
from domain.session import SessionStatus

T0 = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def agent(name: str = "a", **kw: object) -> Agent:
    return Agent(tenant_id="acme", name=name, server_url="http://127.0.0.1:4096", **kw)


def proven(name: str, succeeded: int, total: int) -> Agent:
    return agent(name, performance=AgentPerformance(tasks_total=total, tasks_succeeded=succeeded))


# -- lifecycle ----------------------------------------------------------------------------------


def test_a_registered_agent_is_active() -> None:
    registered = agent()
    assert registered.status is AgentStatus.ACTIVE and registered.active


@pytest.mark.parametrize(
    ("start", "target"),
    [
        (AgentStatus.ACTIVE, AgentStatus.DRAINING),
        (AgentStatus.ACTIVE, AgentStatus.INACTIVE),
        (AgentStatus.DRAINING, AgentStatus.INACTIVE),
        (AgentStatus.DRAINING, AgentStatus.ACTIVE),
        (AgentStatus.INACTIVE, AgentStatus.ACTIVE),
    ],
)
def test_allowed_lifecycle_moves(start: AgentStatus, target: AgentStatus) -> None:
    moved = agent(status=start)
    moved.change_status(target)
    assert moved.status is target


@pytest.mark.parametrize(
    ("start", "target"),
    [
        (AgentStatus.INACTIVE, AgentStatus.DRAINING),  # nothing to drain: it takes no work
        (AgentStatus.ACTIVE, AgentStatus.ACTIVE),
        (AgentStatus.DRAINING, AgentStatus.DRAINING),
        (AgentStatus.INACTIVE, AgentStatus.INACTIVE),
    ],
)
def test_refused_lifecycle_moves_name_both_states(start: AgentStatus, target: AgentStatus) -> None:
    refused = agent(status=start)
    with pytest.raises(InvalidTransition, match=f"{start.value} -> {target.value}"):
        refused.change_status(target)
    assert refused.status is start


@pytest.mark.parametrize(
    ("status", "reason"), [(AgentStatus.DRAINING, "draining"), (AgentStatus.INACTIVE, "inactive")]
)
def test_routing_sends_no_new_session_to_a_draining_or_inactive_agent(
    status: AgentStatus, reason: str
) -> None:
    assert refusal_reason(AgentState(agent(status=status), 0), set()) == reason


def test_the_active_flag_of_older_callers_maps_onto_the_status() -> None:
    assert agent(active=False).status is AgentStatus.INACTIVE
    switched = agent()
    switched.active = False
    assert switched.status is AgentStatus.INACTIVE
    switched.active = True
    assert switched.status is AgentStatus.ACTIVE


# -- performance tier -------------------------------------------------------------------------


def test_a_new_agent_is_new_with_no_success_rate_not_elite() -> None:
    performance = AgentPerformance()
    assert performance.tier is AgentTier.NEW
    assert performance.success_rate is None


def test_one_finished_session_gives_a_tier() -> None:
    performance = AgentPerformance().record(SessionStatus.COMPLETED, at=T0)
    assert performance.tier is AgentTier.ELITE and performance.success_rate == 1.0


def test_a_partially_completed_session_counts_as_half_a_success() -> None:
    performance = AgentPerformance()
    for outcome in (SessionStatus.COMPLETED, SessionStatus.PARTIALLY_COMPLETED):
        performance = performance.record(outcome, at=T0)
    assert performance.success_rate == 0.75
    assert performance.tasks_total == 2 and performance.tasks_succeeded == 1.5


@pytest.mark.parametrize(
    "outcome",
    [SessionStatus.FAILED, SessionStatus.TIMEOUT, SessionStatus.ORPHANED, SessionStatus.STOPPED],
)
def test_other_endings_count_as_failures(outcome: SessionStatus) -> None:
    assert AgentPerformance().record(outcome, at=T0).success_rate == 0.0


def test_a_new_agent_is_scored_between_proven_good_and_proven_weak_agents() -> None:
    assert TIER_WEIGHT[AgentTier.TRAINEE] < TIER_WEIGHT[AgentTier.NEW]
    assert TIER_WEIGHT[AgentTier.NEW] < TIER_WEIGHT[AgentTier.ELITE]
    new, elite, weak = agent("new"), proven("elite", 10, 10), proven("weak", 6, 10)
    assert choose_agent([AgentState(new, 0), AgentState(elite, 0)]).agent_id == elite.id
    assert choose_agent([AgentState(new, 0), AgentState(weak, 0)]).agent_id == new.id


def test_stored_performance_of_earlier_versions_still_reads() -> None:
    """Before partial credit, the window held booleans and the counts were integers."""
    stored = {"tasks_total": 3, "tasks_succeeded": 2, "recent": [True, False, True]}
    performance = AgentPerformance.model_validate(stored)
    assert performance.recent == [1.0, 0.0, 1.0]
    assert performance.success_rate == pytest.approx(2 / 3)
