"""A wave's view of its agents and their load, for routing many sessions without a query each.

The database knows the sessions in flight per agent (every wave's); a wave reads that snapshot at
most once per `refresh_every` and adds what it routed itself since. A start whose RUNNING state is
not committed yet ("in transit") is invisible to the database, so it stays counted across a
refresh; once committed the next snapshot counts it. Slots freed by finished sessions show at the
next refresh: briefly conservative, never over capacity because of this wave.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta

from domain.agent import Agent

RegistryRead = Callable[[], tuple[list[Agent], dict[str, int]]]


class AgentLoadView:
    def __init__(
        self,
        read: RegistryRead,
        refresh_every: timedelta,
        clock: Callable[[], datetime],
    ) -> None:
        self._read = read
        self._refresh_every = refresh_every
        self._clock = clock
        self._agents: list[Agent] = []
        self._snapshot: dict[str, int] = {}
        self._read_at: datetime | None = None
        self._in_transit: Counter[str] = Counter()
        self._since_snapshot: Counter[str] = Counter()

    def agents(self) -> list[Agent]:
        self._refresh_if_due()
        return list(self._agents)

    def busy(self) -> dict[str, int]:
        """Sessions in flight per agent, as far as this wave can tell."""
        self._refresh_if_due()
        return {
            agent.id: self._snapshot.get(agent.id, 0) + self._since_snapshot[agent.id]
            for agent in self._agents
        }

    def in_transit(self, agent_id: str) -> int:
        """Sessions routed to the agent whose start has not ended (RUNNING or failed) yet."""
        return max(self._in_transit[agent_id], 0)

    def routed(self, agent_id: str) -> None:
        self._in_transit[agent_id] += 1
        self._since_snapshot[agent_id] += 1

    def started(self, agent_id: str) -> None:
        """Its RUNNING state is committed: the next snapshot counts it."""
        self._in_transit[agent_id] -= 1

    def start_failed(self, agent_id: str) -> None:
        self._in_transit[agent_id] -= 1
        self._since_snapshot[agent_id] -= 1

    def _refresh_if_due(self) -> None:
        now = self._clock()
        if self._read_at is not None and now - self._read_at < self._refresh_every:
            return
        self._agents, self._snapshot = self._read()
        self._read_at = now
        self._since_snapshot = Counter({k: v for k, v in self._in_transit.items() if v > 0})
