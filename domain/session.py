"""Coding sessions: the unit of work a tenant submits and an agent carries out.

The 12 states and their transitions are exactly MISSION.md's table; ORPHANED (supervisor and
agent-side session both lost) is reachable from RUNNING and retried like FAILED and TIMEOUT.
"""

from __future__ import annotations

import random
from collections.abc import Collection
from datetime import datetime, timedelta
from enum import IntEnum, StrEnum
from typing import Any, ClassVar

from pydantic import Field, field_validator

from domain.checkpoint import MAX_CHECKPOINTS_KEPT, Checkpoint
from domain.clock import utcnow
from domain.code_repository import checked_ref
from domain.domain_model import DomainModel
from domain.errors import InvalidTransition, NotAllowedInStatus, RetriesExhausted
from domain.events import StatusChanged
from domain.field_rules import checked_model, checked_prompt, checked_title
from domain.ids import new_session_id
from domain.metrics import SessionMetrics
from domain.quota import CostCap
from domain.retry import RetryPolicy
from domain.state_machine import StateMachine, Transitions

TITLE_MAX = 200
DESCRIPTION_MAX = 1000
PROMPT_MAX = 10_000
MIN_DURATION_SECONDS = 60
MAX_DURATION_SECONDS = 86_400
DEFAULT_DURATION_SECONDS = 3_600
ATTEMPTS_KEY = "attempts"  # in metadata: the retried attempts, each with its error


class SessionStatus(StrEnum):
    PENDING = "PENDING"
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    DEGRADED = "DEGRADED"
    COMPLETED = "COMPLETED"
    PARTIALLY_COMPLETED = "PARTIALLY_COMPLETED"
    FAILED = "FAILED"
    TIMEOUT = "TIMEOUT"
    STOPPED = "STOPPED"
    CANCELLED = "CANCELLED"
    ORPHANED = "ORPHANED"


_S = SessionStatus
SESSION_MACHINE: StateMachine[SessionStatus] = StateMachine(
    "session",
    {
        _S.PENDING: frozenset({_S.QUEUED, _S.RUNNING, _S.CANCELLED, _S.FAILED}),
        # QUEUED -> PENDING: a claimed session no agent can serve gives its slot back
        _S.QUEUED: frozenset({_S.PENDING, _S.RUNNING, _S.CANCELLED, _S.FAILED}),
        _S.RUNNING: frozenset(
            {
                _S.COMPLETED,
                _S.PARTIALLY_COMPLETED,
                _S.FAILED,
                _S.TIMEOUT,
                _S.PAUSED,
                _S.STOPPED,
                _S.DEGRADED,
                _S.ORPHANED,
            }
        ),
        _S.PAUSED: frozenset({_S.RUNNING, _S.STOPPED, _S.CANCELLED}),
        _S.DEGRADED: frozenset({_S.RUNNING, _S.FAILED, _S.COMPLETED, _S.STOPPED}),
        _S.FAILED: frozenset({_S.PENDING}),
        _S.TIMEOUT: frozenset({_S.PENDING}),
        _S.ORPHANED: frozenset({_S.PENDING}),
        _S.COMPLETED: frozenset(),
        _S.PARTIALLY_COMPLETED: frozenset(),
        _S.STOPPED: frozenset(),
        _S.CANCELLED: frozenset(),
    },
)
RETRYABLE_STATES = frozenset({_S.FAILED, _S.TIMEOUT, _S.ORPHANED})
ACTIVE_STATES = frozenset({_S.QUEUED, _S.RUNNING, _S.PAUSED, _S.DEGRADED})


class SessionType(StrEnum):
    PLANNING = "planning"
    EXECUTION = "execution"
    REVIEW = "review"
    DEBUG = "debug"
    INTEGRATION = "integration"


class Priority(IntEnum):
    CRITICAL = 0
    HIGH = 1
    MEDIUM = 2
    LOW = 3
    DEFERRED = 4


class Session(Transitions, DomainModel):
    machine: ClassVar[StateMachine[SessionStatus]] = SESSION_MACHINE

    id: str = Field(default_factory=new_session_id)
    tenant_id: str
    title: str
    description: str = Field(default="", max_length=DESCRIPTION_MAX)
    session_type: SessionType = SessionType.EXECUTION
    priority: Priority = Priority.MEDIUM
    initial_prompt: str
    model: str | None = None
    agent_config: dict[str, Any] = Field(default_factory=dict)
    max_duration_seconds: int = Field(
        default=DEFAULT_DURATION_SECONDS, ge=MIN_DURATION_SECONDS, le=MAX_DURATION_SECONDS
    )
    parent_id: str | None = None
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    metrics: SessionMetrics = Field(default_factory=SessionMetrics)
    checkpoints: list[Checkpoint] = Field(default_factory=list)
    status: SessionStatus = SessionStatus.PENDING
    status_reason: str = ""
    retry_count: int = Field(default=0, ge=0)
    max_retries: int = Field(default=3, ge=0, le=20)
    next_attempt_at: datetime | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    idempotency_key: str | None = Field(default=None, max_length=200)
    agent_id: str | None = None
    agent_session_id: str | None = None
    required_capabilities: list[str] = Field(default_factory=list)
    cost_cap: CostCap | None = None
    lease_owner: str | None = Field(default=None, max_length=200)
    lease_expires_at: datetime | None = None
    # Waiting PENDING because no agent offers its capabilities: since when (None: routable).
    unroutable_since: datetime | None = None
    # The tenant's code repository it works on (`domain.code_repository`) and the ref its
    # worktree starts from; None: a scratch workspace of its own.
    repository: str | None = Field(default=None, max_length=63)
    ref: str | None = Field(default=None, max_length=250)
    version: int = Field(default=1, ge=1)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)

    @field_validator("title")
    @classmethod
    def _title(cls, value: str) -> str:
        return checked_title(value, TITLE_MAX)

    @field_validator("initial_prompt")
    @classmethod
    def _prompt(cls, value: str) -> str:
        return checked_prompt(value, PROMPT_MAX)

    @field_validator("model")
    @classmethod
    def _model(cls, value: str | None) -> str | None:
        return checked_model(value)

    @field_validator("ref")
    @classmethod
    def _ref(cls, value: str | None) -> str | None:
        return None if value is None else checked_ref(value)

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        cleaned = [tag.strip() for tag in value if tag.strip()]
        if any(len(tag) > 64 for tag in cleaned) or len(cleaned) > 50:
            raise ValueError("at most 50 tags of at most 64 characters")
        return list(dict.fromkeys(cleaned))

    def lease_expired(self, now: datetime) -> bool:
        """No live supervisor: never leased, or its lease ran out (the run died or stalled)."""
        return self.lease_expires_at is None or self.lease_expires_at <= now

    @property
    def deadline(self) -> datetime | None:
        """When this attempt must be aborted and end TIMEOUT (max duration from its start)."""
        if self.metrics.attempt_started_at is None:
            return None
        return self.metrics.attempt_started_at + timedelta(seconds=self.max_duration_seconds)

    @property
    def can_retry(self) -> bool:
        """Retries left, and the failure is not one a retry would only repeat (unroutable)."""
        return (
            self.status in RETRYABLE_STATES
            and self.retry_count < self.max_retries
            and (self.error or {}).get("retryable", True) is not False
        )

    @property
    def settled(self) -> bool:
        """Nothing more happens to it on its own: final, or failed with no retry left."""
        return self.is_final or (self.status in RETRYABLE_STATES and not self.can_retry)

    def _refuse_transition(self, target: SessionStatus) -> None:
        """Back to PENDING only through `retry` (it counts the attempt) or
        `release_unroutable` (a claimed session no agent can serve gives its slot back)."""
        if target is SessionStatus.PENDING:
            raise InvalidTransition(SESSION_MACHINE.name, self.status.value, target.value)

    def require_status(
        self, allowed: Collection[SessionStatus], action: str, target: SessionStatus
    ) -> None:
        """Refuse an action (pause, resume, ...) this status does not allow, saying which
        statuses do: the bare table move ("PENDING -> RUNNING") would mislead."""
        if self.status not in allowed:
            names = [status.value for status in SessionStatus if status in allowed]
            raise NotAllowedInStatus(
                "session", self.id, self.status.value, action, names, target.value
            )

    def retry(
        self,
        policy: RetryPolicy | None = None,
        at: datetime | None = None,
        rng: random.Random | None = None,
        reason: str = "retry",
    ) -> StatusChanged:
        """FAILED/TIMEOUT/ORPHANED -> PENDING, bounded by `max_retries`, with backoff and jitter.

        The session becomes eligible again at `next_attempt_at`; one that used its retries stays.
        """
        SESSION_MACHINE.check(self.status, SessionStatus.PENDING)
        if self.retry_count >= self.max_retries:
            raise RetriesExhausted(self.id, self.max_retries)
        now = at or utcnow()
        policy = policy or RetryPolicy(max_retries=self.max_retries)
        attempt = self.retry_count + 1
        next_at = policy.next_attempt_at(now, attempt, rng)
        data: dict[str, Any] = {"retry": attempt, "next_attempt_at": next_at.isoformat()}
        if self.error is not None:
            data["error"] = self.error
        self._end_attempt(now)
        event = self._apply_transition(SessionStatus.PENDING, reason, now, data=data)
        self.retry_count = attempt
        self.metrics = self.metrics.model_copy(
            update={"retries": attempt, "attempt_started_at": None, "ended_at": None}
        )
        self.next_attempt_at = next_at
        return event

    def mark_unroutable(self, reason: str, at: datetime) -> bool:
        """No agent offers what it needs: it waits PENDING, saying why. True the first time
        (record it then), False when it was already marked (its wait keeps its start)."""
        if self.unroutable_since is not None:
            return False
        self.unroutable_since = at
        self.status_reason = reason
        self.updated_at = at
        return True

    def clear_unroutable(self, reason: str) -> None:
        """An agent now offers what it needs: it is claimed like any other."""
        self.unroutable_since = None
        self.status_reason = reason

    def release_unroutable(self, reason: str, at: datetime) -> StatusChanged:
        """QUEUED -> PENDING: claimed, but its agents went away; give the slot back and wait."""
        if self.status is not SessionStatus.QUEUED:
            raise InvalidTransition(SESSION_MACHINE.name, self.status.value, "PENDING (release)")
        event = self._apply_transition(SessionStatus.PENDING, reason, at)
        self.lease_owner = None
        self.lease_expires_at = None
        self.unroutable_since = at
        return event

    def fail_unroutable(self, reason: str, at: datetime) -> StatusChanged:
        """Waited too long for an agent: FAILED, not to be retried into the same wait. Its
        retries count as spent, so nothing (the retry sensor's finder included) takes it for
        retryable work."""
        event = self.transition_to(SessionStatus.FAILED, reason, at=at)
        self.error = {"reason": reason, "retryable": False}
        self.max_retries = self.retry_count
        return event

    def add_checkpoint(self, data: dict[str, Any], at: datetime | None = None) -> Checkpoint:
        """Append checkpoint n+1; only the newest `MAX_CHECKPOINTS_KEPT` are kept."""
        sequence = self.checkpoints[-1].sequence + 1 if self.checkpoints else 1
        checkpoint = Checkpoint(sequence=sequence, data=data, created_at=at or utcnow())
        self.checkpoints = [*self.checkpoints, checkpoint][-MAX_CHECKPOINTS_KEPT:]
        return checkpoint

    def _end_attempt(self, at: datetime) -> None:
        """The ended attempt, its error with it, goes into the history; the next one starts
        with no error, so a later success is not shown with an earlier failure."""
        ended = {
            "attempt": self.retry_count + 1,
            "status": self.status.value,
            "reason": self.status_reason,
            "error": self.error,
            "ended_at": (self.metrics.ended_at or at).isoformat(),
        }
        self.metadata = {**self.metadata, ATTEMPTS_KEY: [*self.attempts, ended]}
        self.error = None

    @property
    def attempts(self) -> list[dict[str, Any]]:
        """The ended attempts that were retried, oldest first (see `_end_attempt`)."""
        return list(self.metadata.get(ATTEMPTS_KEY, []))

    def _on_transition(self, target: SessionStatus, at: datetime) -> None:
        self.unroutable_since = None  # a wait for an agent is PENDING's alone
        self.metrics = self.metrics.on_status(target.value, at)
        if target is SessionStatus.COMPLETED:
            self.error = None
