"""Splitting a request into subtasks: the rule-based decomposer and a subtask list's graph.

Contract: `decompose` splits a prompt by explicit structure only (a numbered list, a bullet
list, or steps joined by ";" / ", then"), each step depending on the one before (FS) and carrying
a PERT estimate that grows with its length; a prompt with nothing to split gives []. A subtask
list's dependencies name subtasks by key or by 0-based index; `check_subtasks` refuses unknown
or self dependencies, duplicate keys, cycles and chains deeper than 10 with `InvalidInput`
naming the subtasks involved.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.decomposition import (
    MAX_SUBTASKS,
    SUBTASK_PROMPT_MAX,
    TITLE_CHARS,
    SubtaskSpec,
    check_subtasks,
    decompose,
    dependency_edges,
    estimate_for,
    subtask_at,
    subtask_keys,
)
from domain.errors import InvalidInput
from domain.estimate import Complexity
from domain.task import DependencyType, TaskDependency

FS = DependencyType.FINISH_TO_START


def steps(prompt: str) -> list[str]:
    return [subtask.prompt for subtask in decompose(prompt)]


# --- the decomposer ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        (
            "Build the login page:\n1. Add the form\n2. Validate the input\n3. Write the tests",
            ["Add the form", "Validate the input", "Write the tests"],
        ),
        # "1)" numbering, indentation, and a blank line between items.
        ("  1) Add the form\n\n  2) Write the tests", ["Add the form", "Write the tests"]),
        # Lines under an item (and deeper-indented sub-items) continue it.
        (
            "1. Add the form\n   with two fields\n   1. email\n   2. password\n2. Write the tests",
            [
                "Add the form\nwith two fields\n1. email\n2. password",
                "Write the tests",
            ],
        ),
        (
            "Tidy up:\n- Rename the module\n- Fix the imports",
            ["Rename the module", "Fix the imports"],
        ),
        ("* Rename the module\n* Fix the imports", ["Rename the module", "Fix the imports"]),
        (
            "Add a model; write the API; add tests",
            ["Add a model", "Write the API", "Add tests"],
        ),
        (
            "Write the model, then the API, and then the tests.",
            ["Write the model", "The API", "The tests."],
        ),
        ("Write the model. Then write the API.", ["Write the model", "Write the API."]),
    ],
)
def test_explicit_structure_is_split_into_steps(prompt: str, expected: list[str]) -> None:
    assert steps(prompt) == expected


@pytest.mark.parametrize(
    "prompt",
    [
        "Fix the flaky login test.",
        "If the build fails then fix it.",  # "then" without a comma or full stop: one step
        "1. Only one numbered item",
        "- only one bullet",
        "Run it; ",  # one real step and an empty one
        'Say [script:text reply="a; b"] then stop',  # separators inside brackets or quotes
        "Use `a; b` as the separator",
        "Fix the crash.\nThe log says: x = 1; y = 2",  # ";" splits one-line prompts only
        "   ",
    ],
)
def test_nothing_to_split_gives_no_subtasks(prompt: str) -> None:
    assert decompose(prompt) == []


def test_each_step_depends_on_the_one_before_and_is_titled_by_its_first_line() -> None:
    subtasks = decompose(
        "1. Add the form:\n   fields email and password\n2. Validate the input.\n3. Write tests"
    )
    assert [s.key for s in subtasks] == ["step-1", "step-2", "step-3"]
    assert [s.title for s in subtasks] == ["Add the form", "Validate the input", "Write tests"]
    assert [s.depends_on for s in subtasks] == [[], ["step-1"], ["step-2"]]
    assert {s.dependency_type for s in subtasks} == {FS}
    assert all(s.estimate is not None for s in subtasks)
    check_subtasks(subtasks)


def test_numbered_lists_win_over_bullets_and_separators() -> None:
    prompt = "1. Add a model; keep it small\n   - with ids\n2. Add the API"
    assert steps(prompt) == ["Add a model; keep it small\n- with ids", "Add the API"]


def test_a_long_step_gets_a_short_title() -> None:
    long_step = "Refactor " + "the very long module name " * 10
    [first, _] = decompose(f"1. {long_step}\n2. Test it")
    assert len(first.title) <= TITLE_CHARS
    assert first.title.endswith("…")
    assert first.prompt == long_step.strip()


def test_a_list_longer_than_a_chain_may_be_splits_and_is_then_refused() -> None:
    prompt = "\n".join(f"{n}. step {n}" for n in range(1, 13))
    subtasks = decompose(prompt)
    assert len(subtasks) == 12
    with pytest.raises(InvalidInput) as refused:
        check_subtasks(subtasks)
    assert "chain of depth 11 (at most 10 allowed): step-12 -> step-11" in refused.value.reason


def test_the_estimate_grows_with_the_length_of_the_step() -> None:
    short, long = estimate_for("Fix a typo"), estimate_for("word " * 200)
    assert 0 < short.expected_hours < long.expected_hours
    assert short.optimistic_hours <= short.most_likely_hours <= short.pessimistic_hours
    assert short.complexity in {Complexity.TRIVIAL, Complexity.SIMPLE}
    assert long.complexity in {Complexity.COMPLEX, Complexity.EXPERT}


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_any_prompt_decomposes_into_a_valid_chain_or_nothing(prompt: str) -> None:
    subtasks = decompose(prompt)
    assert len(subtasks) != 1
    if 0 < len(subtasks) <= 11:
        check_subtasks(subtasks)
        assert all(s.prompt.strip() and s.title for s in subtasks)


# --- a subtask list's dependency graph --------------------------------------------------------


def spec(title: str, *depends_on: str | int, key: str | None = None) -> SubtaskSpec:
    return SubtaskSpec(title=title, prompt=f"Do {title}.", depends_on=list(depends_on), key=key)


def test_keys_default_to_the_position_and_indices_name_subtasks() -> None:
    subtasks = [spec("a"), spec("b", 0, key="bee"), spec("c", "bee", 0)]
    assert subtask_keys(subtasks) == ["0", "bee", "2"]
    assert dependency_edges(subtasks) == [
        TaskDependency(task_id="bee", depends_on_id="0"),
        TaskDependency(task_id="2", depends_on_id="bee"),
        TaskDependency(task_id="2", depends_on_id="0"),
    ]
    assert check_subtasks(subtasks) == ["0", "bee", "2"]


def test_a_repeated_dependency_counts_once() -> None:
    assert len(dependency_edges([spec("a"), spec("b", 0, "0")])) == 1


@pytest.mark.parametrize(
    ("subtasks", "message"),
    [
        ([spec("a", "b", key="a"), spec("b", "a", key="b")], "cycle: a -> b -> a"),
        ([spec("a", key="a"), spec("b", "zz")], "subtask '1' depends on unknown subtask 'zz'"),
        ([spec("a", 5)], "subtask '0' depends on unknown subtask #5"),
        ([spec("a", 0)], "subtask '0' depends on itself"),
        ([spec("a", key="x"), spec("b", key="x")], "duplicate subtask keys ['x']"),
        ([spec("a", key="1"), spec("b")], "duplicate subtask keys ['1']"),
    ],
)
def test_a_broken_graph_is_refused_naming_the_subtasks(
    subtasks: list[SubtaskSpec], message: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_subtasks(subtasks)
    assert refused.value.field == "subtasks"
    assert message in refused.value.reason


def test_a_chain_of_eleven_is_allowed_and_twelve_is_too_deep() -> None:
    def chain(length: int) -> list[SubtaskSpec]:
        return [spec(f"s{n}", *([n - 1] if n else [])) for n in range(length)]

    assert len(check_subtasks(chain(11))) == 11
    with pytest.raises(InvalidInput) as refused:
        check_subtasks(chain(12))
    assert "chain of depth 11 (at most 10 allowed)" in refused.value.reason


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"title": " ", "prompt": "x"}, "title"),
        ({"title": "t" * 201, "prompt": "x"}, "title"),
        ({"title": "t", "prompt": "  "}, "prompt"),
        ({"title": "t", "prompt": "x" * (SUBTASK_PROMPT_MAX + 1)}, "prompt"),
        ({"title": "t", "prompt": "x", "key": ""}, "key"),
        ({"title": "t", "prompt": "x", "max_retries": 21}, "max_retries"),
        ({"title": "t", "prompt": "x", "model": "no-slash"}, "model"),
    ],
)
def test_a_bad_subtask_is_refused(fields: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        SubtaskSpec(**fields)
    assert refused.value.field == field


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"title": " ", "prompt": "x"}, "subtask #2: title must not be blank"),
        ({"title": "", "prompt": "x", "key": "docs"}, "subtask #2 ('docs'): title must not be"),
        ({"title": "t", "prompt": " "}, "subtask #2: prompt must not be blank"),
    ],
)
def test_a_bad_subtask_in_a_list_is_named_by_its_index_and_key(
    fields: dict[str, object], named: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        subtask_at(2, fields)
    assert refused.value.field == "subtasks"
    assert refused.value.reason.startswith(named)


def test_at_most_fifty_subtasks() -> None:
    with pytest.raises(InvalidInput) as refused:
        check_subtasks([spec(f"s{n}") for n in range(MAX_SUBTASKS + 1)])
    assert f"at most {MAX_SUBTASKS} subtasks" in refused.value.reason
