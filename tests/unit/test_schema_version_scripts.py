"""Reading a migration script's revision lines, as every wave run does before it works.

The reader must not build Python AST objects: on CPython 3.11, `ast.parse` in one thread while
another converts an AST too (a collection running a finalizer in between) can fail with
`SystemError: AST constructor recursion depth mismatch` — a demo wave run failed so in CI.
"""

from __future__ import annotations

import ast

import pytest

from resources.database import schema_version
from resources.database.schema_version import VERSIONS_DIR, _script_revisions

SCRIPT = '''"""Add a table."""

from alembic import op

# revision identifiers, used by Alembic.
revision{annotation} = {revision}
down_revision{down_annotation} = {down}
branch_labels = None
'''


@pytest.mark.parametrize(
    ("revision", "down", "expected"),
    [
        ('"0002"', '"0001"', ("0002", ("0001",))),
        ("'0001'", "None", ("0001", ())),
        ('"0005"', '("0003", "0004")', ("0005", ("0003", "0004"))),
        ('"0005"', '(\n    "0003",\n    "0004",\n)', ("0005", ("0003", "0004"))),
        ('"0006"', '"0005"  # after the merge', ("0006", ("0005",))),
    ],
)
@pytest.mark.parametrize("annotated", [False, True])
def test_the_revision_and_what_it_follows_are_read(
    revision: str, down: str, expected: tuple[str, tuple[str, ...]], annotated: bool
) -> None:
    source = SCRIPT.format(
        revision=revision,
        down=down,
        annotation=": str" if annotated else "",
        down_annotation=": str | Sequence[str] | None" if annotated else "",
    )
    assert _script_revisions(source) == expected


def test_a_script_without_a_revision_has_none() -> None:
    assert _script_revisions('"""Not a migration."""\nx = 1\n') == (None, ())


def test_a_revision_line_inside_a_function_or_a_string_is_not_the_scripts() -> None:
    source = 'def upgrade():\n    revision = "9999"\n\nrevision = "0003"\ndown_revision = "0002"\n'
    assert _script_revisions(source) == ("0003", ("0002",))


def test_the_project_scripts_read_as_the_ast_reads_them() -> None:
    for script in sorted(VERSIONS_DIR.glob("*.py")):
        source = script.read_text(encoding="utf-8")
        found = {
            node.targets[0].id: ast.literal_eval(node.value)
            for node in ast.parse(source).body
            if isinstance(node, ast.Assign)
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id in ("revision", "down_revision")
        }
        down = found.get("down_revision")
        follows = (down,) if isinstance(down, str) else tuple(down or ())
        assert _script_revisions(source) == (found["revision"], follows), script.name


def test_the_reader_builds_no_python_ast() -> None:
    assert "ast" not in vars(schema_version)
