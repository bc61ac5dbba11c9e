"""Paired A/B comparison of a base and a tuned model on the same held-out items.

Each item is answered by both models and judged right or wrong, so the two outcomes of an item
are paired: the difference in accuracy gets a 95 % paired-bootstrap interval (items resampled
with replacement, seeded, so a re-run gives the same interval) and McNemar's exact test looks at
the discordant items only (tuned right where base was wrong, and the reverse).

The bootstrap alone is overconfident on a handful of items (three wins out of three resample to
an interval of [1, 1]), so promotion also needs a minimum number of items and a significant
McNemar p-value, beside the interval's lower bound clearing the margin.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import Field

from domain.domain_model import ValueObject
from domain.errors import InvalidInput

BOOTSTRAP_RESAMPLES = 10_000
CONFIDENCE = 0.95


class PairedComparison(ValueObject):
    items: int
    base_accuracy: float
    tuned_accuracy: float
    difference: float  # tuned minus base
    wins: int  # the tuned model right, the base wrong
    losses: int  # the base right, the tuned wrong
    ties: int
    win_rate: float | None  # wins among the items decided either way; None when none was
    ci_low: float
    ci_high: float
    mcnemar_p: float
    seed: int


class PromotionDecision(ValueObject):
    promote: bool
    reason: str


class PromotionRule(ValueObject):
    """When a tuned model is better enough to replace the base."""

    margin: float = Field(default=0.0, ge=-1, le=1)  # the interval's lower bound must exceed it
    min_items: int = Field(default=10, ge=1)
    alpha: float = Field(default=0.05, gt=0, lt=1)  # McNemar's significance level

    def decide(self, result: PairedComparison) -> PromotionDecision:
        if result.items < self.min_items:
            return PromotionDecision(
                promote=False,
                reason=f"{result.items} items held out, fewer than the {self.min_items} needed",
            )
        if result.ci_low <= self.margin:
            return PromotionDecision(
                promote=False,
                reason=f"the 95 % interval's lower bound {result.ci_low:+.3f} is not above the "
                f"margin {self.margin:+.3f}",
            )
        if result.mcnemar_p >= self.alpha:
            return PromotionDecision(
                promote=False,
                reason=f"McNemar p = {result.mcnemar_p:.4f} is not below {self.alpha}",
            )
        return PromotionDecision(
            promote=True,
            reason=f"accuracy {result.base_accuracy:.3f} -> {result.tuned_accuracy:.3f}, "
            f"95 % interval [{result.ci_low:+.3f}, {result.ci_high:+.3f}], "
            f"McNemar p = {result.mcnemar_p:.4f}",
        )


def compare_paired(
    base_right: Sequence[bool],
    tuned_right: Sequence[bool],
    *,
    seed: int,
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> PairedComparison:
    if len(base_right) != len(tuned_right):
        raise InvalidInput(
            "outcomes", f"{len(base_right)} base and {len(tuned_right)} tuned: not paired"
        )
    if not base_right:
        raise InvalidInput("outcomes", "no item to compare")
    base = np.asarray(base_right, dtype=np.int8)
    tuned = np.asarray(tuned_right, dtype=np.int8)
    per_item = tuned - base  # +1 a win, -1 a loss, 0 a tie
    wins, losses = int((per_item == 1).sum()), int((per_item == -1).sum())
    items = len(per_item)
    low, high = _paired_bootstrap_interval(per_item, seed, resamples)
    return PairedComparison(
        items=items,
        base_accuracy=float(base.mean()),
        tuned_accuracy=float(tuned.mean()),
        difference=float(per_item.mean()),
        wins=wins,
        losses=losses,
        ties=items - wins - losses,
        win_rate=wins / (wins + losses) if wins + losses else None,
        ci_low=low,
        ci_high=high,
        mcnemar_p=_mcnemar_exact(wins, losses),
        seed=seed,
    )


def _paired_bootstrap_interval(
    per_item: np.ndarray, seed: int, resamples: int
) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(per_item), size=(resamples, len(per_item)))
    means = per_item[picks].mean(axis=1)
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def _mcnemar_exact(wins: int, losses: int) -> float:
    """Two-sided exact McNemar: the discordant items as a binomial with p = 1/2."""
    if wins + losses == 0:
        return 1.0
    # Imported here: scipy.stats is 0.6 s of imports that every process loading the code
    # location would otherwise pay (the run worker, the daemon, the code server, the webserver).
    from scipy.stats import binomtest

    return float(binomtest(wins, wins + losses, 0.5).pvalue)
