"""Routing picks only eligible agents (capabilities, capacity, health, closed breaker), prefers
the best scored, and explains both the choice and every refusal."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from domain.agent import BREAKER_COOLDOWN, Agent, AgentPerformance
from domain.errors import NoAgentAvailable
from domain.routing import AgentState, choose_agent, refusal_reason
from domain.session import SessionStatus


def agent(name: str, capabilities=("python",), capacity=4, succeeded=10, total=10, **kw) -> Agent:
    return Agent(
        tenant_id="acme",
        name=name,
        server_url="http://127.0.0.1:4096",
        capabilities=list(capabilities),
        capacity=capacity,
        performance=AgentPerformance(tasks_total=total, tasks_succeeded=succeeded),
        **kw,
    )


@pytest.mark.parametrize(
    ("state", "required", "expected"),
    [
        # missing a capability
        (AgentState(agent("a", ["python"]), 0), {"rust"}, "lacks rust"),
        # all slots taken
        (AgentState(agent("a", capacity=2), 2), set(), "full (2/2)"),
        # not answering its health check
        (AgentState(agent("a"), 0, healthy=False), set(), "unhealthy"),
        # 1 success in 5: breaker open
        (AgentState(agent("a", succeeded=1, total=5), 0), set(), "circuit open (success 20%)"),
        # deactivated by an operator
        (AgentState(agent("a", active=False), 0), set(), "inactive"),
        # eligible
        (AgentState(agent("a", ["python", "rust"]), 3), {"RUST"}, None),
    ],
)
def test_refusal_reasons(state: AgentState, required: set[str], expected: str | None) -> None:
    assert refusal_reason(state, {c.lower() for c in required}) == expected


def test_breaker_needs_five_tasks_before_it_opens() -> None:
    assert refusal_reason(AgentState(agent("a", succeeded=0, total=4), 0), set()) is None


def test_the_less_loaded_of_two_equal_agents_wins() -> None:
    busy, idle = agent("busy"), agent("idle")
    decision = choose_agent([AgentState(busy, 3), AgentState(idle, 0)])
    assert decision.agent_id == idle.id
    assert "idle" in decision.reason and "0/4 busy" in decision.reason


def test_a_better_tier_outweighs_a_little_load() -> None:
    elite = agent("elite")
    trainee = agent("trainee", succeeded=6, total=10)
    decision = choose_agent([AgentState(elite, 1), AgentState(trainee, 0)])
    assert decision.agent_id == elite.id


def test_specialist_preferred_over_generalist() -> None:
    specialist = agent("specialist", ["rust"])
    generalist = agent("generalist", ["rust", "python", "go", "java"])
    decision = choose_agent([AgentState(generalist, 0), AgentState(specialist, 0)], ["rust"])
    assert decision.agent_id == specialist.id


def test_no_eligible_agent_raises_with_each_reason() -> None:
    full, wrong = agent("full", capacity=1), agent("wrong", ["go"])
    with pytest.raises(NoAgentAvailable, match="needs python") as refused:
        choose_agent([AgentState(full, 1), AgentState(wrong, 0)], ["python"])
    assert refused.value.reasons == {full.id: "full (1/1)", wrong.id: "lacks python"}


def test_no_agents_at_all_is_no_agent_available() -> None:
    with pytest.raises(NoAgentAvailable):
        choose_agent([])


def test_an_open_breaker_lets_one_probe_through_after_its_cooldown() -> None:
    opened = datetime(2026, 1, 1, tzinfo=UTC)
    performance = AgentPerformance()
    for _ in range(5):
        performance = performance.record(SessionStatus.FAILED, at=opened)
    assert performance.breaker_open and performance.breaker_opened_at == opened
    failing = agent("failing").model_copy(update={"performance": performance})

    during = AgentState(failing, 0, now=opened + BREAKER_COOLDOWN / 2)
    after = AgentState(failing, 0, now=opened + BREAKER_COOLDOWN)
    assert refusal_reason(during, set()) == "circuit open (success 0%)"
    assert refusal_reason(after, set()) is None  # half-open: one probe may go


def test_a_successful_probe_closes_the_breaker() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    performance = AgentPerformance()
    for _ in range(6):
        performance = performance.record(SessionStatus.FAILED, at=at)
    recovered = performance.record(SessionStatus.COMPLETED, at=at + BREAKER_COOLDOWN)
    assert not recovered.breaker_open
    assert recovered.breaker_opened_at is None
    assert recovered.tasks_total == 7 and recovered.tasks_succeeded == 1
