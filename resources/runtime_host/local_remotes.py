"""`file://` remotes: a repository on this host's disk, as a tenant's git may reach it.

Never the platform's own directories (its state, the control plane's workspaces with every
tenant's mirrors, the runtime root with every tenant's HOME and worktrees, the project): refused
when the repository is registered and again before git runs, on the path with its links
resolved. In a managed runtime git runs as the tenant's OS user in its sandbox, which sees no
other path of the host: the repository's path is mounted there, and only when that user may
read it (checked as that user, so a tenant names only what its user could open anyway):
read-write when the user may write it (the session's branch is pushed back), else read-only.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from urllib.parse import unquote, urlsplit

from resources.runtime_host.tenant_users import TenantUser
from resources.settings import PROJECT_ROOT, state_dir, workspaces_dir

RUNTIME_ROOT_VAR = "INDORCH_RUNTIME_ROOT"  # as resources.runtime_host.host reads it
DEFAULT_RUNTIME_ROOT = "/var/lib/indorch/runtimes"


class LocalRemoteRefused(Exception):
    """The `file://` remote may not be used by this tenant; `reason` says why (a path only)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def local_path(url: str) -> Path | None:
    """The path a `file://` URL names (None for any other URL)."""
    parts = urlsplit(url)
    return Path(unquote(parts.path)) if parts.scheme == "file" else None


def platform_directories() -> list[Path]:
    """The platform's own directories on this host (links resolved)."""
    runtime_root = os.environ.get(RUNTIME_ROOT_VAR) or DEFAULT_RUNTIME_ROOT
    return [Path(p).resolve() for p in (state_dir(), workspaces_dir(), runtime_root, PROJECT_ROOT)]


def platform_path_problem(url: str, also: tuple[Path, ...] = ()) -> str | None:
    """Why a `file://` URL may not be a tenant's remote here, or None (any other URL: None);
    `also`: more of the platform's directories (the runtime root in use)."""
    path = local_path(url)
    if path is None:
        return None
    resolved = path.resolve()
    for directory in [*platform_directories(), *(d.resolve() for d in also)]:
        if resolved == directory or directory in resolved.parents:
            return f"{path} is inside the platform's own directories: not a tenant's remote"
    return None


def sandbox_mount(user: TenantUser, url: str) -> tuple[Path, bool]:
    """(the path to mount in the tenant's sandbox, writable) for a `file://` remote;
    `LocalRemoteRefused` when it is the platform's or the tenant's OS user may not read it."""
    problem = platform_path_problem(url, also=(user.tenant_dir.parent,))
    if problem is not None:
        raise LocalRemoteRefused(problem)
    path = local_path(url)
    assert path is not None
    resolved = path.resolve()
    if not _user_may(user, "-r", resolved) or not _user_may(user, "-x", resolved):
        raise LocalRemoteRefused(f"{path} is not readable by the tenant's OS user {user.name}")
    return resolved, _user_may(user, "-w", resolved)


def _user_may(user: TenantUser, test: str, path: Path) -> bool:
    """`test <flag> <path>` as the tenant's user (every directory above it must let it pass)."""
    done = subprocess.run(
        [
            "setpriv",
            f"--reuid={user.uid}",
            f"--regid={user.gid}",
            "--clear-groups",
            "--no-new-privs",
            "test",
            test,
            str(path),
        ],
        env={"PATH": "/usr/bin:/bin"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
        timeout=10,
    )
    return done.returncode == 0
