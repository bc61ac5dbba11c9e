"""The bubblewrap sandbox a tenant's processes run in, as the tenant's own OS user.

`setpriv` drops to the tenant user (no supplementary groups, no new privileges) and execs
`bwrap`, which runs the command in fresh namespaces (user, pid, ipc, uts, cgroup; the network is
shared so the server can be reached and can reach its model) with only these mounts:

- read-only: `/usr` and `/etc` (with the merged-/usr links `/bin`, `/lib`, ...), plus what the
  caller names (the OpenCode install);
- read-write: the tenant's HOME and workspaces (and nothing else of the host: no other tenant's
  directory, not the project, its state directory, database file or secret key);
- a private `/tmp`, a minimal `/dev`, and the `/proc` of its own pid namespace (the control
  plane's processes are not in it).

The environment is built from nothing (`sandbox_environment`); it is the environment of the
`setpriv`/`bwrap` processes themselves, never `--setenv` (argv is world-readable in /proc).

`run_in_sandbox` runs one command there and waits: the way other parts of the platform (setup
scripts, git operations in a tenant's worktree) act as the tenant.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from resources.runtime_host.tenant_users import TenantUser

SYSTEM_READ_ONLY = ("/usr", "/etc")
MERGED_USR_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
BASE_PATH = "/usr/local/bin:/usr/bin:/bin"
# Variables a caller may add to the built environment: OpenCode's own settings and git's, and
# the tenant's own repository credentials for the one git command that needs them
# (resources/git/checkout.py).
ALLOWED_EXTRA_PREFIXES = ("OPENCODE_", "GIT_")
ALLOWED_EXTRA_NAMES = frozenset({"TERM", "INDORCH_GIT_USERNAME", "INDORCH_GIT_PASSWORD"})


@dataclass(frozen=True)
class SandboxSpec:
    """What one sandboxed process may see: the tenant's dirs and `read_only` extras."""

    user: TenantUser
    cwd: Path
    read_only: tuple[Path, ...] = ()
    die_with_parent: bool = False  # the sandbox ends when bwrap's parent does
    sandboxed: bool = True  # False only where explicitly allowed: no isolation at all
    writable: tuple[Path, ...] = field(default=())

    def writable_paths(self) -> tuple[Path, ...]:
        return (self.user.home, self.user.workspaces, *self.writable)


def sandbox_argv(spec: SandboxSpec, command: Sequence[str]) -> list[str]:
    """The full command line; it names paths only, never a secret."""
    if not spec.sandboxed:
        return list(command)
    argv = [
        "setpriv",
        f"--reuid={spec.user.uid}",
        f"--regid={spec.user.gid}",
        "--clear-groups",
        "--no-new-privs",
        "bwrap",
        "--unshare-all",
        "--share-net",
        "--new-session",
    ]
    if spec.die_with_parent:
        argv.append("--die-with-parent")
    for path in SYSTEM_READ_ONLY:
        argv += ["--ro-bind", path, path]
    for link in MERGED_USR_LINKS:
        argv += _link_or_bind(link)
    argv += ["--tmpfs", "/tmp", "--dev", "/dev", "--proc", "/proc"]
    if spec.user.null_device is not None:
        argv += ["--dev-bind", str(spec.user.null_device), "/dev/null"]
    for path in spec.read_only:
        argv += ["--ro-bind", str(path), str(path)]
    for path in spec.writable_paths():
        argv += ["--bind", str(path), str(path)]
    argv += ["--chdir", str(spec.cwd), "--", *command]
    return argv


def _link_or_bind(path: str) -> list[str]:
    """Debian's merged /usr: `/bin` is a link to `usr/bin`; recreate it (or bind a real dir)."""
    if os.path.islink(path):
        return ["--symlink", os.readlink(path), path]
    if os.path.isdir(path):
        return ["--ro-bind", path, path]
    return []


def sandbox_environment(user: TenantUser, extra: Mapping[str, str]) -> dict[str, str]:
    """An environment from nothing: the user's identity, PATH, locale, and `extra` (only
    OpenCode's and git's variables: never a platform setting, database or Redis URL)."""
    refused = sorted(
        name
        for name in extra
        if not name.startswith(ALLOWED_EXTRA_PREFIXES) and name not in ALLOWED_EXTRA_NAMES
    )
    if refused:
        raise ValueError(f"not passed into a tenant sandbox: {', '.join(refused)}")
    env = {
        "HOME": str(user.home),
        "USER": user.name,
        "LOGNAME": user.name,
        "PATH": BASE_PATH,
        "LANG": "C.UTF-8",
        "TMPDIR": "/tmp",
        "SHELL": "/bin/bash",
    }
    env.update(extra)
    return env


def run_in_sandbox(
    user: TenantUser,
    command: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    read_only: Sequence[Path] = (),
    timeout: float | None = None,
    sandboxed: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run `command` as the tenant in its sandbox and wait for it (output captured, text)."""
    spec = SandboxSpec(
        user=user,
        cwd=cwd or user.workspaces,
        read_only=tuple(read_only),
        die_with_parent=True,
        sandboxed=sandboxed,
    )
    return subprocess.run(
        sandbox_argv(spec, command),
        env=sandbox_environment(user, env or {}),
        cwd=spec.cwd if not sandboxed else "/",
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@cache
def sandbox_problem() -> str | None:
    """What keeps this host from sandboxing tenants (None: nothing; checked once)."""
    if os.geteuid() != 0:
        return "the control plane is not root (it cannot create users or switch to them)"
    for tool, package in (
        ("bwrap", "bubblewrap"),
        ("setpriv", "util-linux"),
        ("useradd", "passwd"),
    ):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (Debian package {package})"
    probe = subprocess.run(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "bwrap",
            "--ro-bind",
            "/",
            "/",
            "--unshare-all",
            "--die-with-parent",
            "true",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        return f"bwrap does not run for an unprivileged user here: {probe.stderr.strip()[:300]}"
    return None
