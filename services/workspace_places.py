"""Where a session's own workspace is made, and what runs git and its setup script there.

A session whose agent is a tenant's managed runtime gets its mirror and worktree inside that
runtime's workspaces (`$INDORCH_RUNTIME_ROOT/<tenant>/workspaces`: the tenant's OS user's, 0700,
the one directory besides its HOME its sandbox mounts read-write), and git and the setup script
run as that user in its sandbox: the sandboxed server can work in the tree, and no other tenant
(nor its agent) can read it. Every other session works in the control plane's own directory
(`INDORCH_WORKSPACES_DIR/<tenant>`), with git run by the factory's runner (today's behaviour).

The mirrors' lock files are never in a directory the tenant writes in: the control plane opens
them, and a tenant's symlink there must not make it create a file elsewhere.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from domain.runtime import Runtime
from resources.database import Database, tenant_scope, unit_of_work
from resources.git.command_runner import CommandRunner, LocalCommandRunner
from resources.runtime_host.command_runner import SandboxedCommandRunner
from resources.runtime_host.host import RuntimeHost, RuntimeSettings
from resources.runtime_host.local_remotes import (
    LocalRemoteRefused,
    local_path,
    platform_path_problem,
    sandbox_mount,
)
from resources.runtime_host.tenant_users import PRIVATE_MODE, TenantUser

RuntimeHostSource = Callable[[], RuntimeHost]


class RuntimePlaceUnavailable(Exception):
    """The session's runtime cannot hold its workspace here (another host's, or gone)."""


@dataclass(frozen=True)
class WorkspaceLayout:
    """Where a tenant's mirrors and its sessions' worktrees live on the control plane's host."""

    root: Path

    def tenant(self, tenant: str) -> Path:
        """Everything of the tenant's: its mirrors, its sessions' worktrees, git's HOME."""
        return self.root / tenant

    def home(self, tenant: str) -> Path:
        return self.root / tenant / "home"

    def mirror(self, tenant: str, repository: str) -> Path:
        return self.root / tenant / "mirrors" / f"{repository}.git"

    def session(self, tenant: str, session_id: str) -> Path:
        return self.root / tenant / "sessions" / session_id


@dataclass(frozen=True)
class WorkspacePlace:
    """One tenant's place for workspaces: git's HOME, its mirrors, its sessions' worktrees,
    where the mirrors' locks are, what runs git there and who owns what it makes."""

    home: Path
    mirrors: Path
    sessions: Path
    locks: Path
    runner: CommandRunner
    owner_uid: int
    in_runtime: bool = False
    sandbox_user: TenantUser | None = None  # git runs as this user in its sandbox

    def mirror(self, repository: str) -> Path:
        return self.mirrors / f"{repository}.git"

    def session(self, session_id: str) -> Path:
        return self.sessions / session_id


class WorkspacePlaces:
    def __init__(
        self,
        database: Database,
        layout: WorkspaceLayout,
        runner: CommandRunner | None = None,
        runtime_host: RuntimeHostSource | None = None,
    ) -> None:
        """`runtime_host`: this host's managed runtimes (default: from the environment, built
        the first time a session's agent is a runtime)."""
        self._database = database
        self._layout = layout
        self._runner = runner or LocalCommandRunner()
        self._runtime_host = runtime_host or _host_from_environment
        self._host: RuntimeHost | None = None

    def local(self, tenant: str) -> WorkspacePlace:
        """The control plane's directory for the tenant (sessions on unmanaged agents)."""
        home = self._layout.home(tenant)
        home.mkdir(parents=True, exist_ok=True, mode=PRIVATE_MODE)
        mirrors = self._layout.tenant(tenant) / "mirrors"
        return WorkspacePlace(
            home,
            mirrors,
            self._layout.tenant(tenant) / "sessions",
            mirrors,
            self._runner,
            os.getuid(),
        )

    def for_agent(self, tenant: str, agent_id: str | None) -> WorkspacePlace:
        """Inside the runtime whose agent `agent_id` is; the local place for any other agent."""
        runtime = self._runtime_of(tenant, agent_id) if agent_id else None
        if runtime is None:
            return self.local(tenant)
        if runtime.host != self._runtime_host_here().name:
            raise RuntimePlaceUnavailable(
                f"its agent is the managed runtime on host {runtime.host}, not this one"
            )
        return self._in_runtime(tenant, runtime.sandboxed)

    def for_recorded(self, tenant: str, in_runtime: bool) -> WorkspacePlace:
        """The place a recorded workspace was made in (to deliver or remove it)."""
        if not in_runtime:
            return self.local(tenant)
        with tenant_scope(tenant), unit_of_work(self._database) as uow:
            runtime = uow.runtimes.get(self._runtime_host_here().name)
        return self._in_runtime(tenant, runtime.sandboxed if runtime else True)

    @staticmethod
    def reaching(place: WorkspacePlace, url: str) -> tuple[WorkspacePlace, str]:
        """`place` and the URL its git reaches the remote `url` by: a `file://` remote's path
        (links resolved) mounted in the tenant's sandbox
        (`resources.runtime_host.local_remotes`); `LocalRemoteRefused` when the path is the
        platform's or the tenant's user may not read it."""
        if local_path(url) is None:
            return place, url
        if place.sandbox_user is None:
            problem = platform_path_problem(url)
            if problem is not None:
                raise LocalRemoteRefused(problem)
            return place, url
        path, writable = sandbox_mount(place.sandbox_user, url)
        runner = SandboxedCommandRunner(
            place.sandbox_user,
            writable=(path,) if writable else (),
            read_only=() if writable else (path,),
        )
        return replace(place, runner=runner), path.as_uri()

    def _runtime_of(self, tenant: str, agent_id: str) -> Runtime | None:
        with tenant_scope(tenant), unit_of_work(self._database) as uow:
            runtimes = uow.runtimes.list()
        return next((r for r in runtimes if r.agent_id == agent_id), None)

    def _runtime_host_here(self) -> RuntimeHost:
        if self._host is None:
            self._host = self._runtime_host()
        return self._host

    def _in_runtime(self, tenant: str, sandboxed: bool) -> WorkspacePlace:
        host = self._runtime_host_here()
        user = host.prepare(tenant, sandboxed)
        mirrors, sessions = user.workspaces / "mirrors", user.workspaces / "sessions"
        for directory in (mirrors, sessions):
            _owned_directory(directory, user)
        locks = user.tenant_dir / "locks"  # root's (the runtime root's tenant directory)
        locks.mkdir(exist_ok=True, mode=PRIVATE_MODE)
        runner: CommandRunner = SandboxedCommandRunner(user) if sandboxed else LocalCommandRunner()
        return WorkspacePlace(
            user.home, mirrors, sessions, locks, runner, user.uid, True, user if sandboxed else None
        )


def _owned_directory(directory: Path, user: TenantUser) -> None:
    """`directory` the tenant user's, 0700 (made by the control plane, so not a tenant's link:
    its parent is the user's, so a symlink planted there is refused)."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(directory, PRIVATE_MODE)
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        os.fchown(fd, user.uid, user.gid)
        os.fchmod(fd, PRIVATE_MODE)
    finally:
        os.close(fd)


def _host_from_environment() -> RuntimeHost:
    return RuntimeHost(RuntimeSettings.from_environment())
