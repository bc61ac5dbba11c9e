"""Quota arithmetic: where work starts, a tenant's concurrency and token budget are enforced.

Over the concurrency limit a session waits (stays PENDING/QUEUED); over the monthly token budget
new work is refused with `TokenBudgetExceeded`. A per-session cost cap stops one runaway session.
"""

from __future__ import annotations

from datetime import date, datetime

from pydantic import Field

from domain.domain_model import ValueObject
from domain.errors import TokenBudgetExceeded
from domain.metrics import SessionMetrics
from domain.tenant import Tenant


def month_start(day: date | datetime) -> date:
    return date(day.year, day.month, 1)


def free_session_slots(tenant: Tenant, active_sessions: int) -> int:
    """How many more sessions the tenant may start now (0 when at or over its limit)."""
    return max(tenant.max_concurrent_sessions - active_sessions, 0)


def check_token_budget(tenant: Tenant, tokens_used_this_month: int) -> None:
    if tokens_used_this_month >= tenant.monthly_token_budget:
        raise TokenBudgetExceeded(tenant.slug, tokens_used_this_month, tenant.monthly_token_budget)


class CostCap(ValueObject):
    """Optional per-session ceiling in dollars and/or tokens; reaching it stops the session."""

    max_cost_usd: float | None = Field(default=None, gt=0)
    max_tokens: int | None = Field(default=None, gt=0)

    def breach(self, metrics: SessionMetrics) -> str | None:
        """Why `metrics` breaks the cap, or None when within it."""
        if self.max_cost_usd is not None and metrics.cost_usd >= self.max_cost_usd:
            return f"cost cap reached: ${metrics.cost_usd:.4f} >= ${self.max_cost_usd:.4f}"
        if self.max_tokens is not None and metrics.total_tokens >= self.max_tokens:
            return f"token cap reached: {metrics.total_tokens:,} >= {self.max_tokens:,} tokens"
        return None
