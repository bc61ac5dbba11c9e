"""A throwaway git workspace for an OpenCode server: ``git init``, a README, one commit.

OpenCode treats the directory it runs in as the project; a git repository gives it snapshots and
diffs (``GET /session/{id}/diff``). The committer identity is set locally, so no global git
configuration is needed or touched.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

AUTHOR_NAME = "Scripted Workspace"
AUTHOR_EMAIL = "workspace@standins.invalid"
README = "# Workspace\n\nA git workspace for an OpenCode server run by the stand-ins.\n"


def _git(directory: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", *args],
        cwd=directory,
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"},
    )
    return result.stdout


def create_git_workspace(directory: Path) -> Path:
    """Make ``directory`` a git repository with one commit (a README); returns its resolved path.

    Idempotent: an existing repository with at least one commit is left as it is.
    """
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / ".git").exists():
        try:
            _git(directory, "rev-parse", "--verify", "HEAD")
            return directory
        except subprocess.CalledProcessError:
            pass
    _git(directory, "init", "--quiet", "--initial-branch=main")
    _git(directory, "config", "user.name", AUTHOR_NAME)
    _git(directory, "config", "user.email", AUTHOR_EMAIL)
    _git(directory, "config", "commit.gpgsign", "false")
    readme = directory / "README.md"
    if not readme.exists():
        readme.write_text(README)
    _git(directory, "add", "README.md")
    _git(directory, "commit", "--quiet", "-m", "Initial commit")
    return directory
