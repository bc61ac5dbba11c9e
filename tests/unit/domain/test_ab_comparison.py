"""Paired A/B comparison of a base and a tuned model, against hand-computed cases."""

from __future__ import annotations

import pytest

from domain.ab_comparison import PromotionRule, compare_paired
from domain.errors import InvalidInput


def outcomes(both_right: int, base_only: int, tuned_only: int, both_wrong: int):
    base = [True] * both_right + [True] * base_only + [False] * tuned_only + [False] * both_wrong
    tuned = [True] * both_right + [False] * base_only + [True] * tuned_only + [False] * both_wrong
    return base, tuned


def test_a_clear_win_is_promoted():
    base, tuned = outcomes(both_right=5, base_only=1, tuned_only=9, both_wrong=5)
    result = compare_paired(base, tuned, seed=7)
    assert result.items == 20
    assert result.base_accuracy == pytest.approx(0.30)
    assert result.tuned_accuracy == pytest.approx(0.70)
    assert result.difference == pytest.approx(0.40)
    assert (result.wins, result.losses, result.ties) == (9, 1, 10)
    assert result.win_rate == pytest.approx(0.9)
    # McNemar exact: 2 * P(X <= 1 | n=10, p=1/2) = 2 * 11 / 1024
    assert result.mcnemar_p == pytest.approx(22 / 1024)
    assert result.ci_low <= 0.40 <= result.ci_high
    assert result.ci_low > 0.0
    assert PromotionRule().decide(result).promote


def test_all_wins_mcnemar_and_a_degenerate_interval():
    base, tuned = outcomes(both_right=0, base_only=0, tuned_only=12, both_wrong=0)
    result = compare_paired(base, tuned, seed=1)
    assert result.mcnemar_p == pytest.approx(2 * 0.5**12)
    assert (result.ci_low, result.ci_high) == (1.0, 1.0)


def test_a_tie_is_not_promoted():
    base, tuned = outcomes(both_right=10, base_only=4, tuned_only=4, both_wrong=10)
    result = compare_paired(base, tuned, seed=3)
    assert result.difference == 0.0
    assert result.mcnemar_p == pytest.approx(1.0)
    assert result.ci_low < 0.0 < result.ci_high
    decision = PromotionRule().decide(result)
    assert not decision.promote
    assert "lower bound" in decision.reason


def test_identical_answers_tie_exactly():
    base, tuned = outcomes(both_right=7, base_only=0, tuned_only=0, both_wrong=13)
    result = compare_paired(base, tuned, seed=3)
    assert (result.ci_low, result.ci_high, result.mcnemar_p) == (0.0, 0.0, 1.0)
    assert result.win_rate is None  # no item decided either way
    assert not PromotionRule().decide(result).promote


def test_a_loss_is_not_promoted():
    base, tuned = outcomes(both_right=4, base_only=10, tuned_only=1, both_wrong=5)
    result = compare_paired(base, tuned, seed=3)
    assert result.difference == pytest.approx(-0.45)
    assert result.ci_high < 0.0
    assert not PromotionRule().decide(result).promote


def test_a_tiny_sample_must_not_promote_even_if_every_item_is_won():
    base, tuned = outcomes(both_right=0, base_only=0, tuned_only=3, both_wrong=0)
    result = compare_paired(base, tuned, seed=3)
    assert result.ci_low == 1.0  # the bootstrap alone would say "certain"
    decision = PromotionRule(min_items=10).decide(result)
    assert not decision.promote
    assert "3 items" in decision.reason


def test_an_improvement_within_the_margin_is_not_enough():
    base, tuned = outcomes(both_right=30, base_only=0, tuned_only=6, both_wrong=14)
    result = compare_paired(base, tuned, seed=5)
    assert result.ci_low > 0.0
    assert PromotionRule(margin=0.0).decide(result).promote
    assert not PromotionRule(margin=0.5).decide(result).promote


def test_the_interval_is_reproducible_with_a_seed():
    base, tuned = outcomes(both_right=8, base_only=3, tuned_only=7, both_wrong=6)
    first = compare_paired(base, tuned, seed=11)
    again = compare_paired(base, tuned, seed=11)
    assert (first.ci_low, first.ci_high) == (again.ci_low, again.ci_high)


def test_unpaired_or_empty_outcomes_are_refused():
    with pytest.raises(InvalidInput):
        compare_paired([True, False], [True], seed=1)
    with pytest.raises(InvalidInput):
        compare_paired([], [], seed=1)
