"""`indorch session submit` with subtasks, as operators run it: real processes, a real database.

Contract: `--subtask "title::prompt"` (repeatable) submits a coordinating parent and one child
per subtask, each after the one before; `--subtasks-file` reads a JSON list with explicit
dependencies; `--decompose` splits a numbered prompt; a cycle, a misspelt field or both ways at
once is refused on one line with exit 2 and nothing written.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.cli.support import ok, refused
from tests.integration.cli.test_session_cli import session_count, submit


def listed(url: str) -> list[dict]:
    return json.loads(ok(url, "session", "list", "-t", "acme", "--json"))


def test_subtasks_each_run_after_the_one_before(db_url: str) -> None:
    parent = submit(
        db_url,
        "--prompt",
        "Ship the login page",
        "--subtask",
        "Form::Add the login form.",
        "--subtask",
        "Write the tests for it.",
    )
    assert parent["metadata"]["decomposition"] == {"subtasks": 2, "by": "request"}
    children = sorted(
        (s for s in listed(db_url) if s["parent_id"] == parent["id"]), key=lambda s: s["id"]
    )
    assert [c["title"] for c in children] == ["Form", "Write the tests for it."]
    assert children[0]["initial_prompt"].startswith("Add the login form.")


def test_a_subtasks_file_with_explicit_dependencies(db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "subtasks.json"
    path.write_text(
        json.dumps(
            [
                {"key": "api", "title": "API", "prompt": "Add the endpoint."},
                {"key": "ui", "title": "UI", "prompt": "Add the page."},
                {"title": "E2E", "prompt": "Test both.", "depends_on": ["api", "ui"]},
            ]
        )
    )
    parent = submit(db_url, "--prompt", "Add search", "--subtasks-file", str(path))
    assert len([s for s in listed(db_url) if s["parent_id"] == parent["id"]]) == 3


def test_decompose_splits_a_numbered_prompt(db_url: str) -> None:
    parent = submit(db_url, "--prompt", "Tidy up:\n1. Rename it\n2. Fix imports", "--decompose")
    assert parent["metadata"]["decomposition"] == {"subtasks": 2, "by": "decomposer"}
    assert session_count(db_url) == 3


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            [
                {"key": "a", "title": "A", "prompt": "x", "depends_on": ["b"]},
                {"key": "b", "title": "B", "prompt": "y", "depends_on": ["a"]},
            ],
            "invalid subtasks: cycle: a -> b -> a",
        ),
        ([{"title": "A", "prompt": "x", "depends": [0]}], "invalid subtasks: subtask #0: depends"),
        (
            [{"title": "A", "prompt": "x"}, {"key": "docs", "title": " ", "prompt": "y"}],
            "invalid subtasks: subtask #1 ('docs'): title must not be blank",
        ),
        ({"title": "A"}, "must hold a JSON list of subtask objects"),
    ],
)
def test_a_bad_subtasks_file_is_refused_and_writes_nothing(
    db_url: str, tmp_path: Path, content: object, message: str
) -> None:
    path = tmp_path / "subtasks.json"
    path.write_text(json.dumps(content))
    line = refused(
        db_url, "session", "submit", "-t", "acme", "--prompt", "p", "--subtasks-file", str(path)
    )
    assert message in line
    assert session_count(db_url) == 0


def test_a_blank_subtask_title_names_the_subtask(db_url: str) -> None:
    line = refused(
        db_url,
        "session",
        "submit",
        "-t",
        "acme",
        "--prompt",
        "p",
        "--subtask",
        "build::make it",
        "--subtask",
        " ::test it",
    )
    assert line == "error: invalid subtasks: subtask #1: title must not be blank"
    assert session_count(db_url) == 0


def test_subtasks_and_decompose_together_are_refused(db_url: str) -> None:
    line = refused(
        db_url, "session", "submit", "-t", "acme", "--prompt", "p", "--subtask", "x", "--decompose"
    )
    assert "not both" in line
    assert session_count(db_url) == 0
