"""Routing: which agent takes a session, and why.

Only active agents with every required capability, free capacity, a fresh heartbeat and a
closed circuit breaker (or a half-open one with nothing in flight: its one probe) are eligible;
an external agent (EAP) also needs a heartbeat fresher than its TTL: one that stopped beating
has left routing until it beats again;
among them the highest score wins. The score weighs the agent's tier, how closely its
capabilities fit (specialists before generalists), its free capacity and its health, so the
decision and its reason can be recorded and explained.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from domain.agent import Agent, AgentTier, BreakerState
from domain.domain_model import ValueObject
from domain.errors import NoAgentAvailable
from domain.external_agent import HEARTBEAT_TTL, silent_for

TIER_WEIGHT = {
    # A new agent (no finished session) is scored as a competent one: neutral, it gets work
    # when proven agents are busy and before proven weak ones; its results then set its tier.
    AgentTier.NEW: 0.6,
    AgentTier.ELITE: 1.0,
    AgentTier.ADVANCED: 0.8,
    AgentTier.COMPETENT: 0.6,
    AgentTier.TRAINEE: 0.4,
    AgentTier.DEGRADED: 0.1,
}
WEIGHTS = {"tier": 0.4, "load": 0.35, "fit": 0.15, "health": 0.1}


@dataclass(frozen=True)
class AgentState:
    """An agent as routing sees it now: its sessions in flight and whether it answers."""

    agent: Agent
    active_sessions: int
    healthy: bool = True
    now: datetime | None = None
    heartbeat_ttl: timedelta | None = None  # external agents' (None: `HEARTBEAT_TTL`)

    @property
    def free_slots(self) -> int:
        return max(self.agent.capacity - self.active_sessions, 0)


class RoutingDecision(ValueObject):
    agent_id: str
    score: float
    reason: str
    scores: dict[str, float]


def refusal_reason(state: AgentState, required: set[str]) -> str | None:
    """Why this agent cannot take the work, or None when it can."""
    agent = state.agent
    if not agent.active:
        return agent.status.value.lower()  # draining or inactive: no new sessions
    missing = sorted(required - set(agent.capabilities))
    if missing:
        return f"lacks {', '.join(missing)}"
    if not state.healthy:
        return "unhealthy"
    if agent.external and state.now is not None:
        silent = silent_for(agent, state.now, state.heartbeat_ttl or HEARTBEAT_TTL)
        if silent is not None:
            return f"silent (no heartbeat for {silent.total_seconds():.0f} s)"
    performance = agent.performance
    breaker = performance.breaker_state(state.now)
    if breaker is BreakerState.OPEN:
        return f"circuit open (success {performance.success_rate or 0:.0%})"
    if breaker is BreakerState.HALF_OPEN and state.active_sessions > 0:
        return "circuit half-open (its one probe is in flight)"
    if state.free_slots == 0:
        return f"full ({state.active_sessions}/{agent.capacity})"
    return None


def unserved_reason(required: Iterable[str], offered: Iterable[Iterable[str]]) -> str | None:
    """Why no agent with the capabilities `offered` (one set per agent) can ever take work that
    needs `required`, or None when one can. Load, health and breakers are routing's business:
    only capabilities are final until an agent is registered or changed."""
    needed = {capability.lower() for capability in required}
    if not needed:
        return None
    sets = [{capability.lower() for capability in agent} for agent in offered]
    if any(needed <= agent for agent in sets):
        return None
    missing = sorted(needed - set().union(*sets))
    if missing:
        return f"no agent offers {', '.join(missing)}"
    return f"no agent offers {' and '.join(sorted(needed))} together"


def score(state: AgentState, required: set[str]) -> float:
    agent = state.agent
    fit = len(required) / len(agent.capabilities) if agent.capabilities and required else 1.0
    parts = {
        "tier": TIER_WEIGHT[agent.performance.tier],
        "load": state.free_slots / agent.capacity,
        "fit": fit,
        "health": 1.0 if state.healthy else 0.0,
    }
    return round(sum(WEIGHTS[name] * value for name, value in parts.items()), 6)


def choose_agent(states: Iterable[AgentState], required: Iterable[str] = ()) -> RoutingDecision:
    """The best eligible agent, or `NoAgentAvailable` listing each agent's refusal."""
    needed = {capability.lower() for capability in required}
    refusals: dict[str, str] = {}
    scored: list[tuple[float, int, str, AgentState]] = []
    for state in states:
        why_not = refusal_reason(state, needed)
        if why_not:
            refusals[state.agent.id] = why_not
            continue
        scored.append((score(state, needed), state.free_slots, state.agent.id, state))
    if not scored:
        raise NoAgentAvailable(sorted(needed), refusals)
    # Highest score; ties go to the agent with more free slots, then the lower id (stable).
    scored.sort(key=lambda item: (-item[0], -item[1], item[2]))
    best_score, _, _, best = scored[0]
    agent = best.agent
    reason = (
        f"{agent.name} ({agent.performance.tier.value}, {best.active_sessions}/{agent.capacity} "
        f"busy) scored {best_score:.3f} of {len(scored)} eligible"
        + (f"; {len(refusals)} refused" if refusals else "")
    )
    return RoutingDecision(
        agent_id=agent.id,
        score=best_score,
        reason=reason,
        scores={item[2]: item[0] for item in scored},
    )
