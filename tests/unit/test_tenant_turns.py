"""Tenants visited in turn: a tick starts after the last tenant the previous one visited, wraps
around, and stops once its budget is spent (always after at least one tenant)."""

from __future__ import annotations

from sensors.tenant_turns import Budget, in_turn, visit

TENANTS = ["a", "b", "c", "d"]


def test_without_a_cursor_the_tenants_come_in_order() -> None:
    assert in_turn(TENANTS, None) == TENANTS
    assert in_turn(TENANTS, "") == TENANTS


def test_a_cursor_starts_after_the_tenant_it_names_and_wraps_around() -> None:
    assert in_turn(TENANTS, "b") == ["c", "d", "a", "b"]
    assert in_turn(TENANTS, "d") == TENANTS


def test_a_cursor_naming_a_tenant_that_has_no_work_any_more_still_keeps_the_order() -> None:
    assert in_turn(["a", "c", "d"], "b") == ["c", "d", "a"]


def test_an_unlimited_budget_visits_every_tenant() -> None:
    assert list(visit(TENANTS, "a", Budget(None))) == ["b", "c", "d", "a"]
    assert not Budget(None).spent


def test_a_spent_budget_still_visits_one_tenant_so_the_work_advances() -> None:
    assert Budget(0).spent
    assert list(visit(TENANTS, "b", Budget(0))) == ["c"]
    assert list(visit(TENANTS, None, Budget(-1))) == ["a"]
