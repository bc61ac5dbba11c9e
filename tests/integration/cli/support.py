"""Running `indorch` as operators do: a real process against a real database, with extra env."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

INDORCH = shutil.which("indorch", path=str(Path(sys.executable).parent)) or "indorch"


def cli_env(url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": url, "NO_COLOR": "1", "COLUMNS": "200", **(extra or {})}


def indorch(
    url: str,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 60,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [INDORCH, *args],
        env=cli_env(url, env),
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_indorch(url: str, *args: str) -> subprocess.Popen[str]:
    """A command left running (--wait, --follow); the caller collects it with `communicate`."""
    return subprocess.Popen(
        [INDORCH, *args],
        env=cli_env(url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def ok(url: str, *args: str, env: dict[str, str] | None = None) -> str:
    done = indorch(url, *args, env=env)
    assert done.returncode == 0, (done.stdout, done.stderr)
    return done.stdout


def refused(url: str, *args: str, env: dict[str, str] | None = None) -> str:
    """Runs a command expected to be refused: exit 2 and exactly one line on stderr."""
    done = indorch(url, *args, env=env)
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def one_line_error(done: subprocess.CompletedProcess[str] | Sequence[str]) -> str:
    stderr = done.stderr if isinstance(done, subprocess.CompletedProcess) else done[1]
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]
