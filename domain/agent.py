"""Agents: an OpenCode server plus an agent profile, with a lifecycle, capacity, health, a tier
and a circuit breaker.

Lifecycle: ACTIVE agents take new sessions; DRAINING ones take none while the sessions on them
finish (the step before removing one); INACTIVE ones take none (switched off by an operator).

Breaker: CLOSED until too many recent sessions fail (`BREAKER_MIN_TASKS`, below
`BREAKER_SUCCESS_FLOOR`); then OPEN for `BREAKER_COOLDOWN`, refusing every session; then
HALF_OPEN, admitting exactly one probe (a session routed there while nothing else is in flight
on it). The first result recorded after the cool-down decides: a success (or a partial one)
closes it, a failure reopens it for a new cool-down. Results that land during the cool-down
(sessions started before it opened) count in the rates but do not move it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import Field, field_validator, model_validator

from domain.clock import utcnow
from domain.domain_model import DomainModel, ValueObject
from domain.field_rules import checked_model
from domain.ids import new_agent_id
from domain.session import SessionStatus
from domain.session_permissions import OPERATOR_POLICIES
from domain.state_machine import StateMachine

MIN_CAPACITY = 1
MAX_CAPACITY = 50
BREAKER_MIN_TASKS = 5
BREAKER_SUCCESS_FLOOR = 0.3
BREAKER_COOLDOWN = timedelta(seconds=60)
RECENT_WINDOW = 20

# How much of a success each ending is worth; every other ending is a failure (0).
SUCCESS_CREDIT = {SessionStatus.COMPLETED: 1.0, SessionStatus.PARTIALLY_COMPLETED: 0.5}


class AgentStatus(StrEnum):
    ACTIVE = "ACTIVE"
    DRAINING = "DRAINING"
    INACTIVE = "INACTIVE"


AGENT_LIFECYCLE: StateMachine[AgentStatus] = StateMachine(
    "agent",
    {
        AgentStatus.ACTIVE: frozenset({AgentStatus.DRAINING, AgentStatus.INACTIVE}),
        AgentStatus.DRAINING: frozenset({AgentStatus.ACTIVE, AgentStatus.INACTIVE}),
        AgentStatus.INACTIVE: frozenset({AgentStatus.ACTIVE}),
    },
)


class AgentKind(StrEnum):
    """How sessions reach the agent: an OpenCode server the waves drive, or an external agent
    (EAP v1, `domain.external_agent`) that is handed each task and posts its result back."""

    OPENCODE = "opencode"
    EXTERNAL = "external"


class AgentTier(StrEnum):
    NEW = "NEW"  # no finished session yet: its success rate is unknown
    ELITE = "ELITE"
    ADVANCED = "ADVANCED"
    COMPETENT = "COMPETENT"
    TRAINEE = "TRAINEE"
    DEGRADED = "DEGRADED"


class BreakerState(StrEnum):
    CLOSED = "CLOSED"
    OPEN = "OPEN"
    HALF_OPEN = "HALF_OPEN"


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


class AgentPerformance(ValueObject):
    tasks_total: int = Field(default=0, ge=0)
    tasks_succeeded: float = Field(default=0, ge=0)  # a partial completion counts 0.5
    quality: float = Field(default=1.0, ge=0, le=1)
    recent: list[float] = Field(default_factory=list, max_length=RECENT_WINDOW)
    breaker_opened_at: datetime | None = None

    @field_validator("recent", mode="before")
    @classmethod
    def _credits(cls, value: Any) -> Any:
        """Stored windows of earlier versions hold booleans: True is a full success."""
        if isinstance(value, list):
            return [float(item) if isinstance(item, bool) else item for item in value]
        return value

    def record(self, outcome: SessionStatus, at: datetime) -> AgentPerformance:
        """The performance after one more finished session (the recent window slides), with the
        breaker moved as the module docstring says."""
        credit = SUCCESS_CREDIT.get(outcome, 0.0)
        state = self.breaker_state(at)
        window = [*self.recent, credit][-RECENT_WINDOW:]
        opened_at = self.breaker_opened_at
        if state is BreakerState.HALF_OPEN:  # the probe's verdict
            if credit > 0:
                window, opened_at = [credit], None
            else:
                opened_at = at
        after = self.model_copy(
            update={
                "tasks_total": self.tasks_total + 1,
                "tasks_succeeded": self.tasks_succeeded + credit,
                "recent": window,
            }
        )
        if state is BreakerState.CLOSED and after._tripped:
            opened_at = at
        return after.model_copy(update={"breaker_opened_at": opened_at})

    def breaker_state(self, now: datetime | None) -> BreakerState:
        """Where the breaker stands at `now` (None: no clock, so an open breaker stays OPEN)."""
        if self.breaker_opened_at is None:
            if not self._tripped:
                return BreakerState.CLOSED
            # Tripped with no opening time kept (a record of an earlier version): its cool-down
            # cannot be running, so with a clock it may be probed.
            return BreakerState.OPEN if now is None else BreakerState.HALF_OPEN
        if now is None or now - self.breaker_opened_at < BREAKER_COOLDOWN:
            return BreakerState.OPEN
        return BreakerState.HALF_OPEN

    def breaker_refuses(self, now: datetime | None, in_flight: int = 0) -> bool:
        """Whether a new session may not go to this agent now; `in_flight` counts its sessions
        under way, so HALF_OPEN admits one probe and refuses the next while it runs."""
        state = self.breaker_state(now)
        return state is BreakerState.OPEN or (state is BreakerState.HALF_OPEN and in_flight > 0)

    @property
    def success_rate(self) -> float | None:
        """Successes over finished sessions; None (unknown) before the first one ends."""
        return self.tasks_succeeded / self.tasks_total if self.tasks_total else None

    @property
    def tier(self) -> AgentTier:
        if self.success_rate is None:
            return AgentTier.NEW
        return tier_for(self.success_rate, self.quality)

    @property
    def breaker_open(self) -> bool:
        """Open or half-open: not yet shown to have recovered."""
        return self.breaker_opened_at is not None or self._tripped

    @property
    def _tripped(self) -> bool:
        """Too many recent failures (the window; before one was kept, the overall counts)."""
        if self.recent:
            rate = sum(self.recent) / len(self.recent)
            return len(self.recent) >= BREAKER_MIN_TASKS and rate < BREAKER_SUCCESS_FLOOR
        rate = self.success_rate
        return (
            self.tasks_total >= BREAKER_MIN_TASKS
            and rate is not None
            and rate < BREAKER_SUCCESS_FLOOR
        )


class Agent(DomainModel):
    id: str = Field(default_factory=new_agent_id)
    tenant_id: str
    name: str = Field(min_length=1, max_length=200)
    server_url: str = Field(min_length=1, max_length=2000)  # an external agent's endpoint
    kind: AgentKind = AgentKind.OPENCODE
    # An external agent's token, SHA-256 only (`domain.external_agent`); never shown.
    token_hash: str | None = Field(default=None, repr=False, exclude=True)
    password_env: str | None = Field(default=None, max_length=200)
    # A managed runtime's password, sealed (resources/secret_box.py); never shown.
    password_sealed: str | None = Field(default=None, repr=False, exclude=True)
    opencode_agent: str = Field(default="build", min_length=1, max_length=100)
    # How its sessions' permission requests are answered when the session does not say
    # (`domain.session_permissions`); `allow` is the operator's to set.
    permission_policy: str | None = None
    model: str | None = None
    capabilities: list[str] = Field(default_factory=list)
    capacity: int = Field(default=5, ge=MIN_CAPACITY, le=MAX_CAPACITY)
    status: AgentStatus = AgentStatus.ACTIVE
    performance: AgentPerformance = Field(default_factory=AgentPerformance)
    last_heartbeat_at: datetime | None = None
    version: int = Field(default=1, ge=1)
    created_at: datetime = Field(default_factory=utcnow)

    @model_validator(mode="before")
    @classmethod
    def _active_flag(cls, data: Any) -> Any:
        """`active=` (of callers before the lifecycle) sets the status when none is given."""
        if isinstance(data, dict) and "active" in data:
            data = dict(data)
            active = data.pop("active")
            data.setdefault("status", AgentStatus.ACTIVE if active else AgentStatus.INACTIVE)
        return data

    @property
    def active(self) -> bool:
        """Takes new sessions (routing's eligibility); draining and inactive agents do not."""
        return self.status is AgentStatus.ACTIVE

    @active.setter
    def active(self, value: bool) -> None:
        self.status = AgentStatus.ACTIVE if value else AgentStatus.INACTIVE

    def change_status(self, target: AgentStatus) -> None:
        """Move along the lifecycle (`InvalidTransition` naming both states otherwise)."""
        AGENT_LIFECYCLE.check(self.status, target)
        self.status = target

    @field_validator("server_url")
    @classmethod
    def _url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.lower().startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")  # not echoed: it may carry a password
        return value

    @field_validator("model")
    @classmethod
    def _model(cls, value: str | None) -> str | None:
        return checked_model(value)

    @field_validator("permission_policy")
    @classmethod
    def _permission_policy(cls, value: str | None) -> str | None:
        if value is not None and value not in OPERATOR_POLICIES:
            allowed = ", ".join(sorted(OPERATOR_POLICIES))
            raise ValueError(f"{value!r} must be one of {allowed}")
        return value

    @field_validator("capabilities")
    @classmethod
    def _capabilities(cls, value: list[str]) -> list[str]:
        return sorted({capability.strip().lower() for capability in value if capability.strip()})

    @property
    def external(self) -> bool:
        return self.kind is AgentKind.EXTERNAL

    def has_capabilities(self, required: list[str] | set[str]) -> bool:
        return {c.lower() for c in required} <= set(self.capabilities)
