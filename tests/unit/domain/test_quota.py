"""Quota arithmetic: concurrency slots, the monthly token budget, per-session cost caps."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from domain.errors import InvalidInput, TokenBudgetExceeded
from domain.metrics import SessionMetrics
from domain.quota import CostCap, check_token_budget, free_session_slots, month_start
from domain.tenant import Tenant

TENANT = Tenant(slug="acme", name="Acme", max_concurrent_sessions=2, monthly_token_budget=1000)


@pytest.mark.parametrize(
    ("active", "free"),
    [
        (0, 2),  # idle tenant
        (1, 1),  # one running
        (2, 0),  # at the limit
        (5, 0),  # over the limit (limit lowered while sessions ran): never negative
    ],
)
def test_free_session_slots(active: int, free: int) -> None:
    assert free_session_slots(TENANT, active) == free


def test_budget_refuses_at_the_budget_not_before() -> None:
    check_token_budget(TENANT, 999)
    with pytest.raises(TokenBudgetExceeded, match="used 1,000 of its 1,000 monthly tokens"):
        check_token_budget(TENANT, 1000)


def test_month_start() -> None:
    assert month_start(datetime(2026, 2, 28, 23, 59, tzinfo=UTC)) == date(2026, 2, 1)


@pytest.mark.parametrize(
    ("cap", "metrics", "breached"),
    [
        # under both caps
        (
            CostCap(max_cost_usd=1.0, max_tokens=100),
            SessionMetrics(cost_usd=0.5, tokens_in=50),
            None,
        ),
        # dollars reached exactly
        (CostCap(max_cost_usd=1.0), SessionMetrics(cost_usd=1.0), "cost cap reached"),
        # tokens in + out count together
        (CostCap(max_tokens=100), SessionMetrics(tokens_in=60, tokens_out=40), "token cap reached"),
        # no cap at all
        (CostCap(), SessionMetrics(cost_usd=1e6), None),
    ],
)
def test_cost_cap(cap: CostCap, metrics: SessionMetrics, breached: str | None) -> None:
    reason = cap.breach(metrics)
    assert (reason is None) if breached is None else (breached in (reason or ""))


def test_a_zero_cap_is_invalid() -> None:
    with pytest.raises(InvalidInput, match="max_cost_usd"):
        CostCap(max_cost_usd=0)
