"""Grading a model's answer against the reference a session gave: token-overlap F1 (the SQuAD
measure), so a reworded but equivalent answer counts, a generic one does not."""

from __future__ import annotations

import re
from collections import Counter

TOKEN = re.compile(r"[a-z0-9_]+(?:\.[a-z0-9_]+)*")
DEFAULT_THRESHOLD = 0.6


def tokens(text: str) -> list[str]:
    return TOKEN.findall(text.lower())


def answer_f1(reference: str, answer: str) -> float:
    expected, given = Counter(tokens(reference)), Counter(tokens(answer))
    common = sum((expected & given).values())
    if common == 0:
        return 0.0
    precision = common / sum(given.values())
    recall = common / sum(expected.values())
    return 2 * precision * recall / (precision + recall)


def is_right(reference: str, answer: str, threshold: float = DEFAULT_THRESHOLD) -> bool:
    return answer_f1(reference, answer) >= threshold
