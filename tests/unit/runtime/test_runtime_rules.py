"""The runtime record's pure rules: the host's memory budget, idleness, the OS user's name."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.errors import InvalidInput
from domain.runtime import (
    Runtime,
    RuntimeBudget,
    RuntimeStatus,
    os_user_for,
)

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def test_budget_counts_slots_from_memory() -> None:
    budget = RuntimeBudget(memory_mb=1000, runtime_mb=300)
    assert budget.slots == 3
    assert budget.has_slot(live=2)
    assert not budget.has_slot(live=3)


def test_budget_counts_what_live_runtimes_really_hold() -> None:
    """A runtime that served sessions holds more than an idle one (~770 MB against ~300 MB):
    its measured size counts, never less than the idle size."""
    budget = RuntimeBudget(memory_mb=1600, runtime_mb=300)
    assert budget.has_room([None, 300])  # two idle: 600 + 300 <= 1600
    assert not budget.has_room([770, 700])  # 1470 + 300 > 1600
    assert budget.has_room([770, 100])  # a measured 100 counts as 300: 1070 + 300
    assert budget.held_mb([770, None]) == 1070


def test_budget_always_refuses_when_one_runtime_does_not_fit() -> None:
    assert RuntimeBudget(memory_mb=200, runtime_mb=300).slots == 0


def test_budget_rejects_nonsense() -> None:
    with pytest.raises(InvalidInput):
        RuntimeBudget(memory_mb=1000, runtime_mb=0)


def test_idle_only_after_the_idle_period_without_sessions() -> None:
    runtime = Runtime(
        tenant_id="acme",
        host="h",
        os_user="indorch-t-acme",
        status=RuntimeStatus.LIVE,
        pid=10,
        port=4096,
        last_busy_at=NOW,
    )
    idle = timedelta(seconds=300)
    assert not runtime.idle_at(NOW + timedelta(seconds=299), idle)
    assert runtime.idle_at(NOW + timedelta(seconds=300), idle)


def test_a_stopped_runtime_is_never_idle() -> None:
    runtime = Runtime(tenant_id="acme", host="h", os_user="u", last_busy_at=NOW)
    runtime.status = RuntimeStatus.STOPPED
    assert not runtime.idle_at(NOW + timedelta(days=1), timedelta(seconds=1))


def test_os_user_names_are_valid_and_distinct() -> None:
    assert os_user_for("acme") == "indorch-t-acme"
    long_a = os_user_for("a" * 60)
    long_b = os_user_for("a" * 59 + "b")
    assert len(long_a) <= 32 and len(long_b) <= 32
    assert long_a != long_b
    assert os_user_for("acme-corp") == os_user_for("acme-corp")  # stable
    assert all(c.islower() or c.isdigit() or c == "-" for c in os_user_for("acme-corp"))


def test_a_live_runtime_names_its_process() -> None:
    with pytest.raises(InvalidInput):
        Runtime(tenant_id="acme", host="h", os_user="u", status=RuntimeStatus.LIVE)
