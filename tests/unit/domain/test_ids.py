"""Ids are a prefix plus a 26-character Crockford ULID: unique and increasing within a process."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable

import pytest

from domain import ids

CROCKFORD_26 = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")  # no I, L, O, U


@pytest.mark.parametrize(
    ("make", "prefix"),
    [
        # Sessions, as in MISSION.md.
        (ids.new_session_id, "IND-"),
        # Agents, as in MISSION.md.
        (ids.new_agent_id, "AGENT-"),
        # The other records get their own prefix so an id says what it names.
        (ids.new_task_id, "TASK-"),
        (ids.new_job_id, "FTJ-"),
        (ids.new_user_id, "USR-"),
        (ids.new_api_key_id, "KEY-"),
        (ids.new_evaluation_id, "EVAL-"),
    ],
)
def test_id_has_its_prefix_and_a_crockford_suffix(make: Callable[[], str], prefix: str) -> None:
    value = make()
    assert value.startswith(prefix)
    assert CROCKFORD_26.fullmatch(value.removeprefix(prefix))


def test_ten_thousand_ids_in_a_tight_loop_are_unique_and_strictly_increasing() -> None:
    made = [ids.new_session_id() for _ in range(10_000)]
    assert len(set(made)) == len(made)
    assert all(earlier < later for earlier, later in itertools.pairwise(made))


def test_an_id_sorts_by_creation_time() -> None:
    first, second = ids.ulid(), ids.ulid()
    # The first ten characters are the millisecond timestamp.
    assert first[:10] <= second[:10]
    assert first < second
