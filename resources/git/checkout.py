"""A session's checkout of a repository, with git: a per-tenant bare mirror fetched from the
remote, a worktree of it per session on its own branch, the commit and push of its result.

Credentials reach only the git process that fetches or pushes: a credential helper given as
`-c credential.helper=...` reads them from two variables of that process's environment (its argv
holds their names, not their values; the URL is used as stored, without them). Every git
process runs with no global or system configuration (a user's `credential.helper=store` would
keep the password) and no terminal prompt. Output that reaches a reason is cleaned of the
credentials all the same. One mirror is changed by one process at a time (a file lock).

Git may run as another user (a tenant's, in its sandbox) in directories that user writes in:
the files this process opens itself (the locks, the patch) are never followed through a link
the tenant could have planted (locks live in `lock_dir`; the patch is read only as a plain file
of `owner_uid`), and every directory git works in is made by git itself.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
import shutil
import stat
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from resources.git.command_runner import CommandResult, CommandRunner, OutputSink

GIT_TIMEOUT_SECONDS = 300.0
HELPER = (
    '!f() { test "$1" = get && printf "username=%s\\npassword=%s\\n" '
    '"$INDORCH_GIT_USERNAME" "$INDORCH_GIT_PASSWORD"; }; f'
)
REMOTE_BRANCHES = "+refs/heads/*:refs/remotes/origin/*"
SHA = re.compile(r"^[0-9a-f]{7,40}$")
SCRATCH_COMMIT_DATE = (
    "2000-01-01T00:00:00+0000"  # fixed: a scratch directory's first commit is stable
)


class GitFailed(Exception):
    """A git step failed; `reason` is fit for a session's status (no credential in it)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class GitCredentials:
    username: str
    password: str = field(repr=False)

    @classmethod
    def from_secret(cls, value: str) -> GitCredentials:
        """`user:password`, or a bare token (user `indorch`)."""
        user, sep, password = value.partition(":")
        return cls(user, password) if sep and user else cls("indorch", value)

    def hide(self, text: str) -> str:
        """`text` without the password (git never prints it; this holds if it one day did)."""
        return text.replace(self.password, "***") if self.password else text


@dataclass(frozen=True)
class Checkout:
    """A session's worktree: on `branch`, started from `base` (a commit)."""

    directory: Path
    branch: str
    base: str


class GitCheckouts:
    def __init__(
        self,
        runner: CommandRunner,
        home: Path,
        *,
        lock_dir: Path | None = None,
        owner_uid: int | None = None,
    ) -> None:
        """`home`: the HOME of every git process (the tenant's; nothing of ours in it);
        `lock_dir`: where the mirrors' locks are (default: next to each mirror); `owner_uid`:
        whom git runs as (default: this process's user)."""
        self._runner = runner
        self._home = home
        self._lock_dir = lock_dir
        self._owner_uid = os.getuid() if owner_uid is None else owner_uid

    async def _git(
        self,
        args: list[str],
        cwd: Path,
        *,
        credentials: GitCredentials | None = None,
        env: Mapping[str, str] | None = None,
        on_output: OutputSink | None = None,
    ) -> CommandResult:
        argv = ["git", "-c", "credential.helper=", "-c", "core.hooksPath=/dev/null"]
        run_env = {
            "HOME": str(self._home),
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": "/dev/null",
            **(env or {}),
        }
        if credentials is not None:
            argv += ["-c", f"credential.helper={HELPER}"]
            run_env["INDORCH_GIT_USERNAME"] = credentials.username
            run_env["INDORCH_GIT_PASSWORD"] = credentials.password
        result = await self._runner.run(
            [*argv, *args], cwd=cwd, env=run_env, timeout=GIT_TIMEOUT_SECONDS, on_output=on_output
        )
        if credentials is not None:
            return CommandResult(result.returncode, credentials.hide(result.output))
        return result

    # -- the mirror -------------------------------------------------------------------------------

    async def fetch(self, mirror: Path, url: str, credentials: GitCredentials | None) -> None:
        """The mirror, created on first use, with the remote's branches and tags as they are."""
        mirror.parent.mkdir(parents=True, exist_ok=True)
        if not (mirror / "HEAD").exists():
            await self._must(["init", "--bare", "--quiet", str(mirror)], mirror.parent, "init")
        await self._must(["config", "remote.origin.url", url], mirror, "configure the mirror")
        await self._must(
            ["config", "remote.origin.fetch", REMOTE_BRANCHES], mirror, "configure the mirror"
        )
        result = await self._git(
            ["fetch", "--quiet", "--prune", "--tags", "--force", "origin"],
            mirror,
            credentials=credentials,
        )
        if not result.ok:
            raise GitFailed(f"fetch from {url} failed: {_tail(result.output)}")

    async def resolve(self, mirror: Path, ref: str) -> str | None:
        """The commit `ref` names in the mirror (a branch of the remote, a tag, a commit)."""
        candidates = [f"refs/remotes/origin/{ref}", f"refs/tags/{ref}"]
        if SHA.fullmatch(ref):
            candidates.append(ref)
        for candidate in candidates:
            result = await self._git(
                ["rev-parse", "--verify", "--quiet", f"{candidate}^{{commit}}"], mirror
            )
            if result.ok:
                return result.output.strip()
        return None

    @asynccontextmanager
    async def locked(self, mirror: Path) -> AsyncIterator[None]:
        """The mirror changed by this holder alone (other waves, other processes wait)."""
        lock_dir = self._lock_dir or mirror.parent
        lock_dir.mkdir(parents=True, exist_ok=True)
        with open(lock_dir / f"{mirror.stem}.lock", "a+") as lock:
            await asyncio.to_thread(fcntl.flock, lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    # -- a session's worktree ---------------------------------------------------------------------

    async def add_worktree(self, mirror: Path, directory: Path, branch: str, base: str) -> None:
        """A clean worktree at `base` on `branch` (reset: a retry starts over)."""
        await self.remove_worktree(mirror, directory, branch)
        directory.parent.mkdir(parents=True, exist_ok=True)
        await self._must(
            ["worktree", "add", "--quiet", "--no-track", "-B", branch, str(directory), base],
            mirror,
            "worktree add",
        )

    async def remove_worktree(self, mirror: Path, directory: Path, branch: str) -> None:
        """Its directory, its record in the mirror and its local branch gone (all or some)."""
        if (mirror / "HEAD").exists():
            await self._git(["worktree", "remove", "--force", str(directory)], mirror)
        if directory.exists():
            await asyncio.to_thread(shutil.rmtree, directory, True)
        if (mirror / "HEAD").exists():
            await self._git(["worktree", "prune"], mirror)
            await self._git(["branch", "--quiet", "-D", branch], mirror)

    async def commit_all(self, directory: Path, author: str, email: str, message: str) -> str:
        """Everything in the worktree committed (an empty commit when nothing changed);
        the new commit."""
        await self._must(["add", "--all"], directory, "git add")
        identity = {
            "GIT_AUTHOR_NAME": author,
            "GIT_AUTHOR_EMAIL": email,
            "GIT_COMMITTER_NAME": author,
            "GIT_COMMITTER_EMAIL": email,
        }
        result = await self._git(
            ["commit", "--quiet", "--allow-empty", "--no-verify", "-m", message],
            directory,
            env=identity,
        )
        if not result.ok:
            raise GitFailed(f"commit failed: {_tail(result.output)}")
        return (await self._must(["rev-parse", "HEAD"], directory, "rev-parse")).strip()

    async def push(
        self, directory: Path, url: str, branch: str, credentials: GitCredentials | None
    ) -> None:
        result = await self._git(
            ["push", "--quiet", "--porcelain", url, f"HEAD:refs/heads/{branch}"],
            directory,
            credentials=credentials,
        )
        if not result.ok:
            raise GitFailed(f"push of {branch} to {url} rejected: {_tail(result.output)}")

    async def patch(self, directory: Path, base: str, into: Path) -> str:
        """The committed change against the base, as `git apply` takes it (written to `into`,
        outside the worktree: a command's output is kept only as a tail)."""
        await self._must(["diff", "--binary", f"--output={into}", base, "HEAD"], directory, "diff")
        try:
            return await asyncio.to_thread(_read_own_file, into, self._owner_uid)
        finally:
            into.unlink(missing_ok=True)

    async def init_scratch(self, directory: Path, kept_at: Path | None = None) -> None:
        """An empty repository with one empty commit (OpenCode tracks changes in git projects).

        The commit is the same whenever the same directory is made again, and differs between
        directories: OpenCode names a project by its first commit, so a directory made again
        for another session stays the project its server knows, and two directories never
        share one (nor the server's snapshots of it).
        `kept_at` (where no session writes; only where this process's user owns the
        directory): the repository as git first made it is kept there, and copied from there
        when the directory is made again, without a git process (two per session start). No
        template: its sample hooks never run here (`core.hooksPath`), and the copy is smaller."""
        if kept_at is not None and kept_at.is_dir():
            try:
                await asyncio.to_thread(_copy_repository, kept_at, directory)
            except OSError as error:
                raise GitFailed(f"scratch repository not copied: {error}") from None
            return
        if directory.is_symlink():  # planted: removed, not followed
            directory.unlink()
        elif directory.exists():
            await asyncio.to_thread(shutil.rmtree, directory, True)
        directory.parent.mkdir(parents=True, exist_ok=True)
        await self._must(
            ["init", "--quiet", "--template=", "-b", "main", str(directory)],
            directory.parent,
            "init",
        )
        committed = await self._git(
            ["commit", "--quiet", "--allow-empty", "-m", f"scratch workspace {directory.name}"],
            directory,
            env={
                "GIT_AUTHOR_NAME": "indorch",
                "GIT_AUTHOR_EMAIL": "indorch@localhost",
                "GIT_COMMITTER_NAME": "indorch",
                "GIT_COMMITTER_EMAIL": "indorch@localhost",
                "GIT_AUTHOR_DATE": SCRATCH_COMMIT_DATE,
                "GIT_COMMITTER_DATE": SCRATCH_COMMIT_DATE,
            },
        )
        if kept_at is not None and committed.ok:  # not kept without its commit: made again
            await asyncio.to_thread(_keep_repository, directory / ".git", kept_at)

    async def _must(self, args: list[str], cwd: Path, step: str) -> str:
        result = await self._git(args, cwd)
        if not result.ok:
            raise GitFailed(f"git {step} failed: {_tail(result.output)}")
        return result.output


def _copy_repository(kept: Path, directory: Path) -> None:
    if directory.is_symlink():  # planted: removed, not followed
        directory.unlink()
    elif directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    shutil.copytree(kept, directory / ".git", symlinks=True)


def _keep_repository(git_dir: Path, kept_at: Path) -> None:
    """A copy of `git_dir` at `kept_at`, whole or not at all."""
    kept_at.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = kept_at.with_name(f"{kept_at.name}.{os.getpid()}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(git_dir, partial, symlinks=True)
    try:
        partial.rename(kept_at)
    except OSError:  # kept meanwhile by another process: theirs is the same repository
        shutil.rmtree(partial, ignore_errors=True)


def _read_own_file(path: Path, owner_uid: int) -> str:
    """`path`'s text if it is a plain file of `owner_uid` (not a link, nor another's file
    linked there); `GitFailed` otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as error:
        raise GitFailed(f"the patch could not be read: {error.strerror}") from None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_uid != owner_uid or info.st_nlink != 1:
            raise GitFailed("the patch is not a plain file of the workspace's owner")
        return file.read().decode(errors="replace")


def _tail(output: str, limit: int = 500) -> str:
    text = " ".join(output.split())
    return text[-limit:] if text else "no output"
