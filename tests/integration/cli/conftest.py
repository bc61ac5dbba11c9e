"""Fixtures of the CLI tests.

Databases: every test gets its own SQLite file, copied from a template that real `indorch`
processes migrated (`db upgrade`) and, for `db_url`, gave the tenant acme (`tenant create`) once
per run: a process per test for that setup took a large share of these tests' time, and the
migrations and `tenant create` have tests of their own.

OpenCode: one real server with Basic auth (`OPENCODE_PASSWORD`), for the agent and session CLI
tests that register an agent or abort a turn on a real server: started on demand and shared by
the package's tests (a server's start-up took seconds of CPU and wall per module), stopped when
they are done. Its binary, HOME and scripted model are those of tests/integration/opencode.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from standins.opencode_server import OpenCodeServer
from tests.integration.cli.support import OPENCODE_PASSWORD, ok
from tests.integration.opencode.conftest import (  # noqa: F401
    opencode_binary,
    opencode_home,
    scripted_model,
    scripted_model_url,
)

SQLITE_PREFIX = "sqlite:///"


def _settled(path: Path) -> Path:
    """The template, once every process that wrote it has ended: one file, no WAL left over."""
    leftovers = [p.name for p in path.parent.glob(path.name + "-*")]
    assert not leftovers, f"{path.name} still has {leftovers}: a copy would miss their pages"
    return path


def _copy(template: Path, sqlite_url: str) -> str:
    shutil.copyfile(template, sqlite_url.removeprefix(SQLITE_PREFIX))
    return sqlite_url


@pytest.fixture(scope="session")
def templates_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli_templates")


@pytest.fixture(scope="session")
def migrated_template(templates_dir: Path) -> Path:
    path = templates_dir / "migrated.db"
    ok(f"{SQLITE_PREFIX}{path}", "db", "upgrade")
    return _settled(path)


@pytest.fixture(scope="session")
def acme_template(templates_dir: Path, migrated_template: Path) -> Path:
    path = templates_dir / "acme.db"
    shutil.copyfile(migrated_template, path)
    ok(f"{SQLITE_PREFIX}{path}", "tenant", "create", "acme")
    return _settled(path)


@pytest.fixture
def migrated_db_url(migrated_template: Path, sqlite_url: str) -> str:
    """This test's own SQLite database, at the current schema, with no tenant."""
    return _copy(migrated_template, sqlite_url)


@pytest.fixture
def db_url(acme_template: Path, sqlite_url: str) -> str:
    """This test's own SQLite database, at the current schema, with the tenant acme."""
    return _copy(acme_template, sqlite_url)


@pytest.fixture(scope="package")
def opencode_server(
    opencode_binary: Path,  # noqa: F811 (the fixtures imported above)
    opencode_home: Path,  # noqa: F811
    scripted_model_url: str,  # noqa: F811
) -> Iterator[OpenCodeServer]:
    server = OpenCodeServer(
        scripted_model_url, home=opencode_home, binary=opencode_binary, password=OPENCODE_PASSWORD
    )
    try:
        server.start()
        yield server
    finally:
        server.stop()
