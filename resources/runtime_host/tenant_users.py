"""One unprivileged OS user per tenant, created on first use, with its own HOME and workspaces.

Layout under the runtime root (root-owned, mode 0711: others may pass through, not list it):

    <root>/<tenant>/            root, 0711
    <root>/<tenant>/home        the tenant user, 0700 (OpenCode's data, config, caches)
    <root>/<tenant>/workspaces  the tenant user, 0700 (session worktrees, scratch workspaces)
    <root>/<tenant>/runtime.log root, 0600 (the server's output, kept out of the tenant's reach)

The user is a system user with no login shell and no password; its group is its own.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from domain.runtime import os_user_for

ROOT_MODE = 0o711
PRIVATE_MODE = 0o700
NO_LOGIN_SHELL = "/usr/sbin/nologin"
NULL_DEVICE_NAME = ".null"


class TenantUserError(RuntimeError):
    """The tenant's OS user or its directories could not be made."""


@dataclass(frozen=True)
class TenantUser:
    name: str
    uid: int
    gid: int
    home: Path
    workspaces: Path
    null_device: Path | None = None  # the sandbox's /dev/null where the host's will not do

    @property
    def tenant_dir(self) -> Path:
        return self.home.parent

    @property
    def log_path(self) -> Path:
        return self.tenant_dir / "runtime.log"


def tenant_directory(root: Path, tenant_id: str) -> Path:
    return root / tenant_id


def ensure_tenant_user(tenant_id: str, root: Path) -> TenantUser:
    """The tenant's user and directories, made if missing (idempotent; needs root)."""
    name = os_user_for(tenant_id)
    tenant_dir = tenant_directory(root, tenant_id)
    home, workspaces = tenant_dir / "home", tenant_dir / "workspaces"
    _private_root_dir(root)
    _private_root_dir(tenant_dir)
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        _useradd(name, home)
        entry = pwd.getpwnam(name)
    user = TenantUser(name, entry.pw_uid, entry.pw_gid, home, workspaces, ensure_null_device(root))
    for directory in (home, workspaces):
        directory.mkdir(exist_ok=True)
        os.chown(directory, user.uid, user.gid)
        os.chmod(directory, PRIVATE_MODE)
    return user


def existing_tenant_user(tenant_id: str, root: Path) -> TenantUser | None:
    """The tenant's user if it was made (no side effects)."""
    try:
        entry = pwd.getpwnam(os_user_for(tenant_id))
    except KeyError:
        return None
    tenant_dir = tenant_directory(root, tenant_id)
    return TenantUser(
        entry.pw_name,
        entry.pw_uid,
        entry.pw_gid,
        tenant_dir / "home",
        tenant_dir / "workspaces",
        ensure_null_device(root),
    )


def remove_tenant_directory(tenant_id: str, root: Path) -> Path | None:
    """The tenant's directory under the runtime root gone (HOME, workspaces, mirrors, log); its
    path, or None when there was none. Root's directory, so no link of the tenant's is followed
    (`shutil.rmtree` does not follow links below it either). The OS user stays, reserved with
    the deleted tenant's slug: no login, no password, no files left."""
    tenant_dir = tenant_directory(root, tenant_id)
    if tenant_dir.is_symlink() or not tenant_dir.is_dir():
        return None
    shutil.rmtree(tenant_dir)
    return tenant_dir


def ensure_null_device(root: Path) -> Path | None:
    """None when the host's /dev/null is writable by everyone (as it should be); otherwise
    (a host where it is not: seen here, mode 0644) a proper one under the runtime root, for the
    sandbox to mount over /dev/null: git, shells and OpenCode's tools need to write to it."""
    if os.stat("/dev/null").st_mode & 0o002:
        return None
    node = root / NULL_DEVICE_NAME
    if not node.exists():
        with contextlib.suppress(FileExistsError):
            os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.chmod(node, 0o666)
    return node


def _private_root_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, 0, 0)
    os.chmod(path, ROOT_MODE)


def _useradd(name: str, home: Path) -> None:
    result = subprocess.run(
        [
            "useradd",
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            str(home),
            "--shell",
            NO_LOGIN_SHELL,
            name,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode == 0:
        return
    try:  # made meanwhile by another process: fine
        pwd.getpwnam(name)
    except KeyError:
        raise TenantUserError(
            f"useradd {name} failed (exit {result.returncode}): {result.stderr.strip()}"
        ) from None
