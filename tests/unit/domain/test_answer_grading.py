"""An answer counts as right when it says what the reference says (token overlap, not wording)."""

from __future__ import annotations

import pytest

from domain.answer_grading import answer_f1, is_right


def test_the_same_answer_scores_one_and_is_right():
    assert answer_f1("Done: wrote m1.py.", "done wrote m1.py") == pytest.approx(1.0)
    assert is_right("Done: wrote m1.py.", "done wrote m1.py")


def test_an_unrelated_answer_is_wrong():
    assert answer_f1("Done: wrote m1.py with add()", "Sorry, I cannot help.") == 0.0
    assert not is_right("Done: wrote m1.py with add()", "Sorry, I cannot help.")


def test_a_partial_answer_scores_between_and_the_threshold_decides():
    score = answer_f1("wrote m1.py with the add function", "wrote m1.py")
    assert 0.0 < score < 1.0
    assert is_right("wrote m1.py with the add function", "wrote m1.py", threshold=0.4)
    assert not is_right("wrote m1.py with the add function", "wrote m1.py", threshold=0.9)


def test_an_empty_answer_is_wrong():
    assert not is_right("wrote m1.py", "")
