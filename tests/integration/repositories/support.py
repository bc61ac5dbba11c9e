"""Real git for the repository tests: bare "remote" repositories with a first commit, and a
tenant-secrets stand-in that keeps values sealed with the platform's `SecretBox` (the real
store, `services.tenant_secrets`, is another branch's; this fills the same port)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from cryptography.fernet import Fernet

from domain.caller import Caller
from resources.database import Database
from resources.secret_box import SecretBox
from services.tenant_secrets import TenantSecrets

GIT_ENV = {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
IDENTITY = ["-c", "user.name=Test", "-c", "user.email=test@example.invalid"]


def git(directory: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *IDENTITY, *args],
        cwd=directory,
        env={**os.environ, **GIT_ENV},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def bare_remote(root: Path, name: str = "project", files: dict[str, str] | None = None) -> Path:
    """`root/<name>.git`: a bare repository whose `main` holds `files` (default: a README),
    and a tag `v1` on it."""
    seed = root / f"{name}-seed"
    seed.mkdir(parents=True)
    git(seed, "init", "--quiet", "-b", "main")
    for path, content in (files or {"README.md": "# project\n"}).items():
        (seed / path).parent.mkdir(parents=True, exist_ok=True)
        (seed / path).write_text(content)
    git(seed, "add", "--all")
    git(seed, "commit", "--quiet", "-m", "first")
    git(seed, "tag", "v1")
    bare = root / f"{name}.git"
    git(root, "clone", "--quiet", "--bare", str(seed), str(bare))
    return bare


def remote_branch_files(bare: Path, branch: str) -> dict[str, str]:
    """The files of `branch` in the bare repository, with their contents."""
    names = git(bare, "ls-tree", "-r", "--name-only", branch).split()
    return {name: git(bare, "show", f"{branch}:{name}") for name in names}


def reject_pushes(bare: Path, message: str = "pushes are closed") -> None:
    hook = bare / "hooks" / "pre-receive"
    hook.write_text(f"#!/bin/sh\necho '{message}' >&2\nexit 1\n")
    hook.chmod(0o755)


class SealedTenantSecrets(TenantSecrets):
    """The real tenant secrets (sealed in the test's database with a key of its own), with the
    tests' shorthand for an operator setting one."""

    def __init__(self, database: Database) -> None:
        super().__init__(database, SecretBox([Fernet.generate_key().decode()]))

    def store(self, tenant: str, name: str, value: str) -> None:
        self.set(Caller.operator(), tenant, name, value)
