"""Each session's own workspace: a worktree of its repository on `indorch/<session id>`, or a
scratch repository of its own; never a tree another session writes in.

Before the prompt: the tenant's mirror of the repository is fetched (with the credentials of
the tenant secret the repository names, for that git process only), a clean worktree added at the
session's base commit (the ref resolved on its first attempt; a retry starts again from that same
commit), and the repository's setup script run there, its output passed on as it comes. On
COMPLETED: everything committed (author: the agent; message: the title), pushed to the remote's
`indorch/<session id>`, and the patch kept as the result. When the session ends, the worktree goes
(its branch is on the remote). Where: inside the tenant's managed runtime when the session's
agent is one, git and the script then run as the tenant's OS user in its sandbox; otherwise in
the control plane's directory, through the factory's `CommandRunner` (`workspace_places`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from domain.code_repository import CodeRepository, session_branch
from domain.errors import NotFound
from domain.session import Session
from domain.supervision_policy import DEFAULT_WARM_SLOTS_PER_AGENT
from resources.database import Database, tenant_scope, unit_of_work
from resources.git.checkout import GitCheckouts, GitCredentials, GitFailed
from resources.git.command_runner import CommandRunner
from resources.runtime_host.local_remotes import LocalRemoteRefused
from services.workspace_places import (
    RuntimeHostSource,
    RuntimePlaceUnavailable,
    WorkspaceLayout,
    WorkspacePlace,
    WorkspacePlaces,
)
from services.workspace_slots import (
    SlotPlace,
    WorkspaceSlots,
    is_slot,
)

__all__ = ["SessionWorkspace", "SessionWorkspaces", "WorkspaceFailed", "WorkspaceLayout"]

WORKSPACE_KEY = "workspace"  # in a session's metadata: where it works, from which commit
SETUP_TIMEOUT_SECONDS = 1800.0
REASON_TAIL_CHARS = 1000
PATCH_MAX_CHARS = 1_000_000
OutputSink = Callable[[str], None]
# Disposes of the agent server's instance for a directory that will not be used again.
DisposeInstance = Callable[[], Awaitable[None]]


class SecretReader(Protocol):
    """The named tenant secret's value, for the one operation that needs it (never stored or
    logged by the caller). `NotFound` when the tenant has no secret of that name."""

    def reveal(self, tenant_id: str, name: str) -> str: ...


class WorkspaceFailed(Exception):
    """The workspace could not be made or delivered; `reason` is the session's (no secret)."""

    def __init__(self, reason: str, *, retryable: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


@dataclass(frozen=True)
class SessionWorkspace:
    directory: Path
    repository: str | None = None  # None: a scratch workspace
    branch: str | None = None
    base: str | None = None  # the commit the worktree started from
    in_runtime: bool = False  # made inside the tenant's managed runtime (as its OS user)
    attempt: int = 0  # the session's retry count when it was made

    def record(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory),
            "repository": self.repository,
            "branch": self.branch,
            "base": self.base,
            "in_runtime": self.in_runtime,
            "attempt": self.attempt,
        }


def recorded_workspace(session: Session) -> SessionWorkspace | None:
    """The workspace its metadata names (a wave adopting it finds it there)."""
    data = session.metadata.get(WORKSPACE_KEY)
    if not isinstance(data, dict) or not data.get("directory"):
        return None
    return SessionWorkspace(
        Path(data["directory"]),
        data.get("repository"),
        data.get("branch"),
        data.get("base"),
        bool(data.get("in_runtime")),
        int(data.get("attempt") or 0),
    )


class SessionWorkspaces:
    def __init__(
        self,
        database: Database,
        layout: WorkspaceLayout,
        runner: CommandRunner | None = None,
        secrets: SecretReader | None = None,
        runtime_host: RuntimeHostSource | None = None,
        warm_slots_per_agent: int = DEFAULT_WARM_SLOTS_PER_AGENT,
    ) -> None:
        """`runner`: git's and setup scripts' outside managed runtimes (default: as the current
        user); `runtime_host`: this host's managed runtimes (default: from the environment);
        `warm_slots_per_agent`: free scratch slots kept warm per agent (`workspace_slots`)."""
        self._database = database
        self._places = WorkspacePlaces(database, layout, runner, runtime_host)
        self._secrets = secrets
        self._slots = WorkspaceSlots(database, warm_slots_per_agent)

    @staticmethod
    def _git(place: WorkspacePlace) -> GitCheckouts:
        return GitCheckouts(
            place.runner, place.home, lock_dir=place.locks, owner_uid=place.owner_uid
        )

    def _place(self, tenant: str, agent_id: str | None) -> WorkspacePlace:
        try:
            return self._places.for_agent(tenant, agent_id)
        except RuntimePlaceUnavailable as error:
            raise WorkspaceFailed(f"workspace: {error}") from None

    async def prepare(
        self, session: Session, on_output: OutputSink, agent_id: str | None = None
    ) -> SessionWorkspace:
        """A clean workspace for this attempt on the agent `agent_id` (inside its managed
        runtime when it is one); `WorkspaceFailed` saying why not."""
        tenant = session.tenant_id
        place = self._place(tenant, agent_id)
        directory = place.session(session.id)
        git = self._git(place)
        if session.repository is None:
            # A slot of the agent's (`workspace_slots`), held by this attempt alone: the previous
            # attempt's wave may still hold its own one (aborting its agent session).
            slots = _slot_place(place)
            directory = await asyncio.to_thread(self._slots.claim, slots, agent_id, session)
            workspace = SessionWorkspace(
                directory, in_runtime=place.in_runtime, attempt=session.retry_count
            )
            try:
                await git.init_scratch(directory, _kept_repository(place, directory))
            except GitFailed as error:
                await self.release(session, workspace)
                raise WorkspaceFailed(f"scratch workspace: {error.reason}") from None
            return workspace
        repository = self._repository(session)
        credentials = self._credentials(repository)
        place, url = self._reaching(place, repository)
        git = self._git(place)
        mirror = place.mirror(repository.name)
        branch = session_branch(session.id)
        previous = recorded_workspace(session)
        try:
            async with git.locked(mirror):
                await git.fetch(mirror, url, credentials)
                base = previous.base if previous and previous.base else None
                if base is None:
                    base = await git.resolve(mirror, session.ref or repository.default_ref)
                if base is None:
                    raise WorkspaceFailed(
                        f"ref {session.ref!r} not found in repository {repository.name}",
                        retryable=False,
                    )
                await git.add_worktree(mirror, directory, branch, base)
                _worktree_owner(place, session.id).write_text(str(session.retry_count))
        except GitFailed as error:
            raise WorkspaceFailed(f"repository {repository.name}: {error.reason}") from None
        workspace = SessionWorkspace(
            directory, repository.name, branch, base, place.in_runtime, session.retry_count
        )
        if repository.setup_script:
            try:
                await self._run_setup(session, place, repository.setup_script, workspace, on_output)
            except WorkspaceFailed:
                await self.release(session, workspace)  # the attempt ends: nothing to keep
                raise
        return workspace

    async def warm_slots_ahead(
        self,
        tenant: str,
        agent_id: str | None,
        warm: Callable[[Path], Awaitable[None]],
        limit: int,
    ) -> int:
        """Up to `limit` new scratch slots of the agent made and handed to `warm` (its server's
        first prompt there) before any session needs them, while it has fewer than are kept
        free; how many. A slot whose warm-up raised is removed, and the error raised."""
        place = self._place(tenant, agent_id)
        slots = _slot_place(place)
        git = self._git(place)
        made = 0
        while made < limit:
            held = await asyncio.to_thread(self._slots.claim_ahead, slots, agent_id)
            if held is None:
                break
            warmed = False
            try:
                await git.init_scratch(held.directory, _kept_repository(place, held.directory))
                await warm(held.directory)
                warmed = True
            except GitFailed as error:
                raise WorkspaceFailed(f"scratch workspace: {error.reason}") from None
            finally:
                await asyncio.to_thread(self._slots.release_ahead, slots, held, warmed=warmed)
            made += 1
        return made

    async def _run_setup(
        self,
        session: Session,
        place: WorkspacePlace,
        script: str,
        workspace: SessionWorkspace,
        on_output: OutputSink,
    ) -> None:
        result = await place.runner.run(
            ["bash", "-c", script],
            cwd=workspace.directory,
            env={"HOME": str(place.home)},
            timeout=min(SETUP_TIMEOUT_SECONDS, float(session.max_duration_seconds)),
            on_output=on_output,
        )
        if not result.ok:
            tail = result.output.strip()[-REASON_TAIL_CHARS:] or "no output"
            how = "timed out" if result.returncode == -1 else f"exit {result.returncode}"
            raise WorkspaceFailed(f"setup script failed ({how}): {tail}")

    async def deliver(
        self, session: Session, workspace: SessionWorkspace, author: str, email: str
    ) -> dict[str, Any]:
        """Commit, push and the patch, for the session's result; nothing for a scratch one."""
        if workspace.repository is None or workspace.branch is None or workspace.base is None:
            return {}
        repository = self._repository(session)
        credentials = self._credentials(repository)
        place, url = self._reaching(
            self._places.for_recorded(session.tenant_id, workspace.in_runtime), repository
        )
        git = self._git(place)
        patch_file = workspace.directory.with_name(f"{session.id}.patch")
        try:
            commit = await git.commit_all(workspace.directory, author, email, session.title)
            await git.push(workspace.directory, url, workspace.branch, credentials)
            patch = await git.patch(workspace.directory, workspace.base, patch_file)
        except GitFailed as error:
            raise WorkspaceFailed(f"repository {repository.name}: {error.reason}") from None
        result: dict[str, Any] = {
            "repository": repository.name,
            "branch": workspace.branch,
            "base": workspace.base,
            "commit": commit,
            "patch": patch[:PATCH_MAX_CHARS],
        }
        if len(patch) > PATCH_MAX_CHARS:
            result["patch_truncated_from"] = len(patch)
        return result

    async def release(
        self,
        session: Session,
        workspace: SessionWorkspace,
        dispose: DisposeInstance | None = None,
    ) -> None:
        """The worktree gone (its branch was pushed, or the attempt failed and the next one
        starts clean); a scratch slot's files gone, the slot kept warm for the next session
        or retired. `dispose` is awaited first whenever the directory will not be used again."""
        place = self._places.for_recorded(session.tenant_id, workspace.in_runtime)
        git = self._git(place)
        if workspace.repository is None or workspace.branch is None:
            if is_slot(workspace.directory):
                await self._release_slot(session, workspace, _slot_place(place), dispose)
                return
            if dispose is not None:
                await dispose()
            await asyncio.to_thread(_remove_tree, workspace.directory)
            return
        mirror = place.mirror(workspace.repository)
        owner = _worktree_owner(place, session.id)
        async with git.locked(mirror):
            if _owning_attempt(owner) > workspace.attempt:
                # A later attempt made the worktree again: it is that attempt's now, and so is
                # the server's instance of the directory (disposing of it would cut the retry's
                # agent session). Disposed under the lock: the retry cannot start in between.
                return
            if dispose is not None:
                await dispose()
            await git.remove_worktree(mirror, workspace.directory, workspace.branch)
            owner.unlink(missing_ok=True)

    async def _release_slot(
        self,
        session: Session,
        workspace: SessionWorkspace,
        slots: SlotPlace,
        dispose: DisposeInstance | None,
    ) -> None:
        released = await asyncio.to_thread(
            self._slots.release, slots, workspace.directory, session, workspace.attempt
        )
        if released != "retire":
            return
        if dispose is not None:
            await dispose()
        await asyncio.to_thread(
            self._slots.retire, slots, workspace.directory, session, workspace.attempt
        )

    def _reaching(
        self, place: WorkspacePlace, repository: CodeRepository
    ) -> tuple[WorkspacePlace, str]:
        try:
            return self._places.reaching(place, repository.url)
        except LocalRemoteRefused as refused:
            raise WorkspaceFailed(
                f"repository {repository.name}: {refused.reason}", retryable=False
            ) from None

    def _repository(self, session: Session) -> CodeRepository:
        assert session.repository is not None
        try:
            with tenant_scope(session.tenant_id), unit_of_work(self._database) as uow:
                return uow.code_repositories.get(session.repository)
        except NotFound:
            raise WorkspaceFailed(
                f"repository {session.repository} is not registered", retryable=False
            ) from None

    def _credentials(self, repository: CodeRepository) -> GitCredentials | None:
        name = repository.credentials_secret
        if name is None:
            return None
        if self._secrets is None:
            raise WorkspaceFailed(
                f"repository {repository.name} needs tenant secret {name!r}: "
                "no tenant secrets on this control plane",
                retryable=False,
            )
        try:
            value = self._secrets.reveal(repository.tenant_id, name)
        except NotFound:
            raise WorkspaceFailed(
                f"repository {repository.name}: tenant secret {name!r} not found",
                retryable=False,
            ) from None
        return GitCredentials.from_secret(value)


def _kept_repository(place: WorkspacePlace, slot: Path) -> Path | None:
    """Where the slot's repository as git first made it is kept, for the next sessions' copies:
    with the mirrors' locks (the control plane's). None inside a managed runtime, where git
    makes it as the tenant's user (a copy by this process would be this process's user's)."""
    return None if place.in_runtime else place.locks / "slot-repositories" / slot.name


def _slot_place(place: WorkspacePlace) -> SlotPlace:
    return SlotPlace(place.sessions, place.locks)


def _worktree_owner(place: WorkspacePlace, session_id: str) -> Path:
    """Which attempt made the session's worktree last: kept with the mirrors' locks (the control
    plane's, never in a directory the tenant writes in), read and written under the mirror's
    lock. A session's attempts share one worktree (its branch can be checked out once), so the
    previous attempt's wave, still aborting when the retry starts, must not remove it."""
    return place.locks / f"{session_id}.attempt"


def _owning_attempt(owner: Path) -> int:
    try:
        return int(owner.read_text())
    except (FileNotFoundError, ValueError):
        return -1


def _remove_tree(directory: Path) -> None:
    import shutil

    shutil.rmtree(directory, ignore_errors=True)
