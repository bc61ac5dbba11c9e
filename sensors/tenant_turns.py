"""Tenants with work, visited in turn across ticks within a time budget per tick.

A tick that has more work than its interval allows (10,000 sessions queued across 1,000 tenants)
stops once its budget is spent and leaves the rest to the next ticks. The sensor's cursor holds
the last tenant visited; the next tick starts after it and wraps around, so every tenant gets
its turn however busy the ones before it stay. A tick always visits at least one tenant, so the
work advances even when a single tenant takes longer than the budget.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")


def in_turn(tenants: list[str], after: str | None) -> list[str]:
    """`tenants` (sorted) starting after the cursor `after`, then wrapping around."""
    if not after:
        return list(tenants)
    return [t for t in tenants if t > after] + [t for t in tenants if t <= after]


class Budget:
    """A tick's time budget, from its start; `None` seconds is unlimited."""

    def __init__(self, seconds: float | None) -> None:
        self._deadline = None if seconds is None else time.monotonic() + seconds

    @property
    def spent(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline


def visit(tenants: list[str], after: str | None, budget: Budget) -> Iterator[str]:
    """The tenants in turn, until the budget is spent (checked after each tenant)."""
    for tenant in in_turn(tenants, after):
        yield tenant
        if budget.spent:
            return


def take_turns(
    tenants: list[str],
    per_tenant: Callable[[str], list[T]],
    after: str | None,
    budget_seconds: float | None,
) -> tuple[list[str], list[T], str | None]:
    """`per_tenant` for the tenants in turn within the budget: (the tenants visited, what they
    gave, the cursor for the next tick: the last one visited, or None when all were)."""
    visited: list[str] = []
    done: list[T] = []
    for tenant in visit(tenants, after, Budget(budget_seconds)):
        visited.append(tenant)
        done += per_tenant(tenant)
    return visited, done, visited[-1] if len(visited) < len(tenants) else None
