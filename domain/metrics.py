"""What a session cost and how long it took: timestamps, durations, tokens, dollars, API calls."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from domain.domain_model import ValueObject

_RUNNING = "RUNNING"
_ENDED = frozenset(
    {"COMPLETED", "PARTIALLY_COMPLETED", "FAILED", "TIMEOUT", "STOPPED", "CANCELLED", "ORPHANED"}
)


class SessionMetrics(ValueObject):
    started_at: datetime | None = None
    attempt_started_at: datetime | None = None
    ended_at: datetime | None = None
    duration_seconds: float | None = Field(default=None, ge=0)
    tokens_in: int = Field(default=0, ge=0)
    tokens_out: int = Field(default=0, ge=0)
    cost_usd: float = Field(default=0.0, ge=0)
    api_calls: int = Field(default=0, ge=0)
    api_errors: int = Field(default=0, ge=0)
    retries: int = Field(default=0, ge=0)

    @property
    def total_tokens(self) -> int:
        return self.tokens_in + self.tokens_out

    def on_status(self, status: str, at: datetime) -> SessionMetrics:
        """The metrics after entering `status` at `at` (start and end timestamps, duration)."""
        if status == _RUNNING and self.attempt_started_at is None:
            return self.model_copy(
                update={"started_at": self.started_at or at, "attempt_started_at": at}
            )
        if status in _ENDED:
            started = self.started_at or at
            return self.model_copy(
                update={
                    "ended_at": at,
                    "duration_seconds": max((at - started).total_seconds(), 0.0),
                }
            )
        return self

    def add_usage(
        self, tokens_in: int = 0, tokens_out: int = 0, cost_usd: float = 0.0, api_calls: int = 0
    ) -> SessionMetrics:
        return self.model_copy(
            update={
                "tokens_in": self.tokens_in + tokens_in,
                "tokens_out": self.tokens_out + tokens_out,
                "cost_usd": self.cost_usd + cost_usd,
                "api_calls": self.api_calls + api_calls,
            }
        )
