"""Bounded retries with exponential backoff and full jitter, computed in the domain.

Jitter spreads retries of many sessions that failed together (a model outage) over time instead
of letting them hit the agent servers in one burst.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from pydantic import Field, model_validator

from domain.domain_model import ValueObject


class RetryPolicy(ValueObject):
    """A broken setting (max below base, jitter outside 0-1, ...) is refused as `InvalidInput`."""

    max_retries: int = Field(default=3, ge=0, le=20)
    base_delay_seconds: float = Field(default=5.0, gt=0)
    max_delay_seconds: float = Field(default=300.0, gt=0)
    multiplier: float = Field(default=2.0, ge=1.0)
    jitter: float = Field(default=0.5, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _max_not_below_base(self) -> RetryPolicy:
        if self.max_delay_seconds < self.base_delay_seconds:
            raise ValueError("max_delay_seconds must be >= base_delay_seconds")
        return self

    def has_retries_left(self, retries_used: int) -> bool:
        return retries_used < self.max_retries

    def ceiling(self, attempt: int) -> float:
        """The un-jittered delay before retry number `attempt` (1-based), capped."""
        if attempt < 1:
            raise ValueError("attempt is 1-based")
        try:
            raw = self.base_delay_seconds * self.multiplier ** (attempt - 1)
        except OverflowError:  # far past the cap already
            return self.max_delay_seconds
        return min(raw, self.max_delay_seconds)

    def delay(self, attempt: int, rng: random.Random | None = None) -> timedelta:
        """A delay in [ceiling * (1 - jitter), ceiling]."""
        ceiling = self.ceiling(attempt)
        draw = (rng or random).random()
        return timedelta(seconds=ceiling * (1.0 - self.jitter * draw))

    def next_attempt_at(
        self, now: datetime, attempt: int, rng: random.Random | None = None
    ) -> datetime:
        return now + self.delay(attempt, rng)
