"""Configuration mistakes as operators make them: `postgres://` works, and every other unusable
`DATABASE_URL` or `INDORCH_STATE_DIR` is one line on stderr and exit 2, whatever the command.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.integration.cli.support import indorch, ok, refused

COMMANDS = [
    ("tenant", "list"),
    ("db", "upgrade"),
    ("db", "current"),
    ("health",),
    ("session", "list", "--tenant", "acme"),
    ("agent", "list", "--tenant", "acme"),
    ("user", "list", "--tenant", "acme"),
]


def test_a_postgres_scheme_url_is_postgresql(fresh_postgres_url: str) -> None:
    url = make_url(fresh_postgres_url).set(drivername="postgres")
    spelled = url.render_as_string(hide_password=False)
    assert spelled.startswith("postgres://")
    ok(spelled, "db", "upgrade")
    ok(spelled, "tenant", "create", "acme")
    assert "acme" in ok(spelled, "tenant", "list")
    assert "database: 0" in ok(spelled, "db", "current")


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_an_unsupported_database_is_one_line_and_exit_2_for_every_command(
    command: tuple[str, ...],
) -> None:
    line = refused("mysql://app:hunter2@db/indorch", *command)
    assert line.startswith("error: DATABASE_URL: unsupported database 'mysql'")
    assert "postgresql://" in line and "hunter2" not in line


@pytest.mark.parametrize("url", ["foo://bar", "garbage", "postgresql://app@db:x/indorch"])
def test_any_unusable_database_url_is_one_line_and_exit_2(url: str) -> None:
    line = refused(url, "tenant", "list")
    assert line.startswith("error: DATABASE_URL") and "postgresql://" in line


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_a_state_dir_that_is_a_file_is_one_line_and_exit_2(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    a_file = tmp_path / "state"
    a_file.write_text("")
    line = refused("", *command, env={"INDORCH_STATE_DIR": str(a_file)})
    assert line.startswith("error: INDORCH_STATE_DIR") and str(a_file) in line


def test_the_help_needs_no_valid_settings() -> None:
    done = indorch("garbage", "--help")
    assert done.returncode == 0, done.stderr
