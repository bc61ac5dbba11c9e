"""Is the database at the code's schema? Answered without Alembic, for every process that asks.

Each wave run, sensor tick and CLI command checks this before it works. Alembic (and the Mako
templating it brings, ~9 MB and ~0.1 CPU-s to import) is for migrating; the answer needs only the
migration scripts' `revision` / `down_revision` lines and the one row of `alembic_version`. The
CLI's commands no longer load it (a run process still does: Dagster's own SQL storage uses it).
Migrating stays with Alembic (`migrate.py`); tests hold both answers equal.

The lines are read with a pattern, not `ast.parse`: on CPython 3.11 building Python AST objects
while another thread does too can fail (`SystemError: AST constructor recursion depth
mismatch`), and a wave run's check did, once, in CI.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

from domain.errors import DomainError

VERSIONS_DIR = Path(__file__).parent / "migrations" / "versions"
VERSION_TABLE = "alembic_version"


class SchemaNotCurrent(DomainError):
    """The database was never migrated, or is behind the code: refuse rather than fail later."""

    def __init__(self, current: str | None, head: str | None) -> None:
        self.current = current
        self.head = head
        super().__init__(
            f"the application database schema is at {current or 'nothing'}, the code needs "
            f"{head}: run `indorch db upgrade`"
        )


# A module-level `revision` / `down_revision` assignment (annotated or not): a string, None, or a
# tuple or list of strings (over several lines too), a comment after it.
_ASSIGNMENT = re.compile(
    r"^(?P<name>revision|down_revision)[ \t]*(?::[^=\n]*)?=[ \t]*"
    r"(?P<value>[(\[][^)\]]*[)\]]|[^\n#]*)",
    re.MULTILINE,
)
_STRING = re.compile(r"""(["'])(?P<text>[^"'\n]*)\1""")


def _script_revisions(source: str) -> tuple[str | None, tuple[str, ...]]:
    """A migration script's own revision and the ones it follows (its module-level constants)."""
    found: dict[str, tuple[str, ...]] = {}
    for match in _ASSIGNMENT.finditer(source):
        if match["name"] not in found:
            found[match["name"]] = tuple(s["text"] for s in _STRING.finditer(match["value"]))
    revision = found.get("revision", ())
    return (revision[0] if revision else None), found.get("down_revision", ())


@cache  # the code's migrations do not change while it runs
def head_revision() -> str | None:
    """The revision no other migration follows (None before the first migration)."""
    revisions: set[str] = set()
    followed: set[str] = set()
    for script in VERSIONS_DIR.glob("*.py"):
        revision, follows = _script_revisions(script.read_text(encoding="utf-8"))
        if revision is not None:
            revisions.add(revision)
            followed.update(follows)
    heads = sorted(revisions - followed)
    if len(heads) > 1:
        raise RuntimeError(f"the migrations have several heads: {', '.join(heads)}")
    return heads[0] if heads else None


def current_revision(engine: Engine) -> str | None:
    """The revision the database was migrated to (None if never)."""
    with engine.connect() as connection:
        if not inspect(connection).has_table(VERSION_TABLE):
            return None
        rows = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars()
        versions = sorted(rows)
    return ",".join(versions) or None


def ensure_current(engine: Engine) -> None:
    current, head = current_revision(engine), head_revision()
    if current != head:
        raise SchemaNotCurrent(current, head)
