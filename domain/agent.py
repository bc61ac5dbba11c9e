"""Agents: an OpenCode server plus an agent profile, with capacity, health and a tier."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import Field, field_validator

from domain.clock import utcnow
from domain.domain_model import DomainModel, ValueObject
from domain.field_rules import checked_model
from domain.ids import new_agent_id

MIN_CAPACITY = 1
MAX_CAPACITY = 50
BREAKER_MIN_TASKS = 5
BREAKER_SUCCESS_FLOOR = 0.3
BREAKER_COOLDOWN = timedelta(seconds=60)


class AgentTier(StrEnum):
    ELITE = "ELITE"
    ADVANCED = "ADVANCED"
    COMPETENT = "COMPETENT"
    TRAINEE = "TRAINEE"
    DEGRADED = "DEGRADED"


def tier_for(success_rate: float, quality: float) -> AgentTier:
    if success_rate >= 0.95 and quality >= 0.9:
        return AgentTier.ELITE
    if success_rate >= 0.85:
        return AgentTier.ADVANCED
    if success_rate >= 0.70:
        return AgentTier.COMPETENT
    if success_rate >= 0.50:
        return AgentTier.TRAINEE
    return AgentTier.DEGRADED


RECENT_WINDOW = 20


class AgentPerformance(ValueObject):
    tasks_total: int = Field(default=0, ge=0)
    tasks_succeeded: int = Field(default=0, ge=0)
    quality: float = Field(default=1.0, ge=0, le=1)
    recent: list[bool] = Field(default_factory=list, max_length=RECENT_WINDOW)
    breaker_opened_at: datetime | None = None

    def record(self, succeeded: bool, at: datetime) -> AgentPerformance:
        """The performance after one more finished session (the recent window slides).

        A success while the breaker is open (the half-open probe) closes it: the window
        restarts from that success.
        """
        if self.breaker_open and succeeded:
            recent = [True]
        else:
            recent = [*self.recent, succeeded][-RECENT_WINDOW:]
        after = self.model_copy(
            update={
                "tasks_total": self.tasks_total + 1,
                "tasks_succeeded": self.tasks_succeeded + int(succeeded),
                "recent": recent,
            }
        )
        opened_at = (self.breaker_opened_at or at) if after.breaker_open else None
        return after.model_copy(update={"breaker_opened_at": opened_at})

    def breaker_refuses(self, now: datetime | None) -> bool:
        """Open and still cooling down; after `BREAKER_COOLDOWN` one probe may go (half-open)."""
        if not self.breaker_open:
            return False
        if now is None or self.breaker_opened_at is None:
            return True
        return now - self.breaker_opened_at < BREAKER_COOLDOWN

    @property
    def recent_success_rate(self) -> float:
        """Success over the last sessions; before any are recorded, the overall rate."""
        if not self.recent:
            return self.success_rate
        return sum(self.recent) / len(self.recent)

    @property
    def success_rate(self) -> float:
        return self.tasks_succeeded / self.tasks_total if self.tasks_total else 1.0

    @property
    def tier(self) -> AgentTier:
        return tier_for(self.success_rate, self.quality)

    @property
    def breaker_open(self) -> bool:
        """Too many recent failures: stop routing work here until it recovers."""
        if self.recent:
            return (
                len(self.recent) >= BREAKER_MIN_TASKS
                and self.recent_success_rate < BREAKER_SUCCESS_FLOOR
            )
        return self.tasks_total >= BREAKER_MIN_TASKS and self.success_rate < BREAKER_SUCCESS_FLOOR


class Agent(DomainModel):
    id: str = Field(default_factory=new_agent_id)
    tenant_id: str
    name: str = Field(min_length=1, max_length=200)
    server_url: str = Field(min_length=1, max_length=2000)
    password_env: str | None = Field(default=None, max_length=200)
    opencode_agent: str = Field(default="build", min_length=1, max_length=100)
    model: str | None = None
    capabilities: list[str] = Field(default_factory=list)
    capacity: int = Field(default=5, ge=MIN_CAPACITY, le=MAX_CAPACITY)
    active: bool = True
    performance: AgentPerformance = Field(default_factory=AgentPerformance)
    last_heartbeat_at: datetime | None = None
    version: int = Field(default=1, ge=1)
    created_at: datetime = Field(default_factory=utcnow)

    @field_validator("server_url")
    @classmethod
    def _url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} must be an http(s) URL")
        return value

    @field_validator("model")
    @classmethod
    def _model(cls, value: str | None) -> str | None:
        return checked_model(value)

    @field_validator("capabilities")
    @classmethod
    def _capabilities(cls, value: list[str]) -> list[str]:
        return sorted({capability.strip().lower() for capability in value if capability.strip()})

    def has_capabilities(self, required: list[str] | set[str]) -> bool:
        return {c.lower() for c in required} <= set(self.capabilities)
