"""Each session's own worktree of its repository, with real git: file:// and HTTP remotes.

Contract: a session's worktree is on `indorch/<session id>` at its ref; delivering commits
everything as the agent with the title as message, pushes that branch, and gives the patch
against the base; two sessions on one repository push only their own changes; a retry starts
clean from the same commit; a missing ref, a rejected push, a failing setup script and wrong
credentials each fail with a clear reason that holds no secret; credentials reach only the git
processes that talk to the remote, in their environment, never in argv; the setup script sees
none of the control plane's environment.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from domain.caller import Caller
from domain.code_repository import CodeRepository
from domain.session import Session
from resources.database import Database
from resources.git.command_runner import CommandResult, LocalCommandRunner, OutputSink
from services.code_repositories import CodeRepositories
from services.session_workspaces import (
    WORKSPACE_KEY,
    SessionWorkspaces,
    WorkspaceFailed,
    WorkspaceLayout,
)
from standins.git_http_server import GitHttpServer
from tests.integration.repositories.conftest import TENANT
from tests.integration.repositories.support import (
    SealedTenantSecrets,
    bare_remote,
    git,
    reject_pushes,
    remote_branch_files,
)

PASSWORD = "pa55-w0rd-never-shown"


class RecordingRunner:
    """The local runner, noting each command's argv and environment."""

    def __init__(self) -> None:
        self._runner = LocalCommandRunner()
        self.calls: list[tuple[list[str], dict[str, str]]] = []

    async def run(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        timeout: float,
        on_output: OutputSink | None = None,
    ) -> CommandResult:
        self.calls.append((list(argv), dict(env)))
        return await self._runner.run(argv, cwd=cwd, env=env, timeout=timeout, on_output=on_output)


def register(database: Database, url: str, **fields: object) -> CodeRepository:
    repository = CodeRepository(tenant_id=TENANT, name="project", url=url, **fields)
    return CodeRepositories(database).register(Caller.operator(), repository)


def session(ref: str | None = "main", title: str = "Add a file") -> Session:
    return Session(
        tenant_id=TENANT, title=title, initial_prompt="do it", repository="project", ref=ref
    )


def workspaces(
    database: Database, tmp_path: Path, secrets: SealedTenantSecrets | None = None, runner=None
) -> SessionWorkspaces:
    return SessionWorkspaces(
        database, WorkspaceLayout(tmp_path / "workspaces"), runner=runner, secrets=secrets
    )


def test_two_sessions_push_their_own_branches_with_only_their_changes(
    database: Database, tmp_path: Path
) -> None:
    remote = bare_remote(tmp_path)
    register(database, f"file://{remote}")
    service = workspaces(database, tmp_path)
    first, second = session(title="First change"), session(title="Second change")

    async def both() -> list[dict]:
        prepared = await asyncio.gather(
            service.prepare(first, print), service.prepare(second, print)
        )
        assert prepared[0].directory != prepared[1].directory
        (prepared[0].directory / "one.txt").write_text("one\n")
        (prepared[1].directory / "two.txt").write_text("two\n")
        results = await asyncio.gather(
            service.deliver(first, prepared[0], "agent-1", "AGENT-1@agents.indorch"),
            service.deliver(second, prepared[1], "agent-2", "AGENT-2@agents.indorch"),
        )
        for one, workspace in zip((first, second), prepared, strict=True):
            await service.release(one, workspace)
            assert not workspace.directory.exists()
        return results

    results = asyncio.run(both())
    assert remote_branch_files(remote, f"indorch/{first.id}") == {
        "README.md": "# project\n",
        "one.txt": "one\n",
    }
    assert remote_branch_files(remote, f"indorch/{second.id}") == {
        "README.md": "# project\n",
        "two.txt": "two\n",
    }
    assert "+one" in results[0]["patch"] and "two.txt" not in results[0]["patch"]
    assert "+two" in results[1]["patch"] and "one.txt" not in results[1]["patch"]
    log = git(remote, "log", "-1", "--format=%an|%s", f"indorch/{first.id}")
    assert log.strip() == "agent-1|First change"
    assert results[0]["branch"] == f"indorch/{first.id}"
    assert results[0]["commit"] == git(remote, "rev-parse", f"indorch/{first.id}").strip()


def test_a_tag_or_a_branch_names_the_start(database: Database, tmp_path: Path) -> None:
    remote = bare_remote(tmp_path)
    register(database, f"file://{remote}")
    main = git(remote, "rev-parse", "main").strip()
    prepared = asyncio.run(workspaces(database, tmp_path).prepare(session(ref="v1"), print))
    assert prepared.base == main
    assert git(prepared.directory, "branch", "--show-current").strip().startswith("indorch/IND-")


def test_a_retry_starts_clean_from_the_same_commit(database: Database, tmp_path: Path) -> None:
    remote = bare_remote(tmp_path)
    register(database, f"file://{remote}")
    service = workspaces(database, tmp_path)
    one = session()
    first = asyncio.run(service.prepare(one, print))
    (first.directory / "half-done.txt").write_text("x")
    one.metadata = {WORKSPACE_KEY: first.record()}
    # The remote's main moves on meanwhile: the retry still starts where the first attempt did.
    seed = tmp_path / "project-seed"
    (seed / "later.txt").write_text("later\n")
    git(seed, "add", "--all")
    git(seed, "commit", "--quiet", "-m", "later")
    git(seed, "push", "--quiet", str(remote), "main")
    again = asyncio.run(service.prepare(one, print))
    assert again.directory == first.directory and again.base == first.base
    assert sorted(p.name for p in again.directory.iterdir() if p.name != ".git") == ["README.md"]


def test_a_late_release_by_the_previous_attempt_leaves_the_retry_s_worktree(
    database: Database, tmp_path: Path
) -> None:
    """The previous attempt's wave (its lease lost, still aborting) releases its workspace
    after the retry made its own in the same place: the retry's tree must survive it."""
    remote = bare_remote(tmp_path)
    register(database, f"file://{remote}")
    service = workspaces(database, tmp_path)
    first_attempt = session()
    first = asyncio.run(service.prepare(first_attempt, print))
    retried = first_attempt.model_copy(
        update={"retry_count": 1, "metadata": {WORKSPACE_KEY: first.record()}}
    )
    second = asyncio.run(service.prepare(retried, print))
    (second.directory / "work.txt").write_text("the retry's work\n")
    disposed: list[str] = []

    async def dispose() -> None:  # the server's instance of the directory: the retry's now
        disposed.append(str(second.directory))

    asyncio.run(service.release(first_attempt, first, dispose))

    assert (second.directory / "work.txt").read_text() == "the retry's work\n"
    assert git(second.directory, "branch", "--show-current").strip() == second.branch
    assert disposed == []  # the retry's agent session keeps its server instance
    asyncio.run(service.release(retried, second, dispose))
    assert not second.directory.exists()
    assert disposed == [str(second.directory)]


def test_a_missing_ref_fails_without_retry(database: Database, tmp_path: Path) -> None:
    register(database, f"file://{bare_remote(tmp_path)}")
    with pytest.raises(WorkspaceFailed) as failed:
        asyncio.run(workspaces(database, tmp_path).prepare(session(ref="no-such-branch"), print))
    assert failed.value.reason == "ref 'no-such-branch' not found in repository project"
    assert failed.value.retryable is False


def test_a_rejected_push_fails_with_the_remote_s_reason(database: Database, tmp_path: Path):
    remote = bare_remote(tmp_path)
    register(database, f"file://{remote}")
    reject_pushes(remote, "branch pushes are closed today")
    service = workspaces(database, tmp_path)
    one = session()
    with pytest.raises(WorkspaceFailed) as failed:

        async def attempt() -> None:
            prepared = await service.prepare(one, print)
            (prepared.directory / "x.txt").write_text("x")
            await service.deliver(one, prepared, "agent-1", "a@agents.indorch")

        asyncio.run(attempt())
    reason = failed.value.reason
    assert reason.startswith(f"repository project: push of indorch/{one.id} to file://")
    assert "rejected" in reason and "branch pushes are closed today" in reason


def test_a_failing_setup_script_fails_with_its_tail_and_sees_no_platform_secret(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://platform:hunter2@db/indorch")
    script = "echo installing\nenv | sort\nls README.md\necho 'build broke' >&2\nexit 3\n"
    register(database, f"file://{bare_remote(tmp_path)}", setup_script=script)
    lines: list[str] = []
    with pytest.raises(WorkspaceFailed) as failed:
        asyncio.run(workspaces(database, tmp_path).prepare(session(), lines.append))
    reason = failed.value.reason
    assert reason.startswith("setup script failed (exit 3): ")
    assert reason.endswith("build broke")
    assert "README.md" in reason  # it ran in the worktree
    assert "installing\n" in lines and "build broke\n" in lines
    assert not any("DATABASE_URL" in line or "hunter2" in line for line in lines)
    assert not list((tmp_path / "workspaces" / TENANT / "sessions").iterdir())  # removed


def test_a_setup_script_runs_before_and_its_output_is_passed_on(
    database: Database, tmp_path: Path
) -> None:
    register(database, f"file://{bare_remote(tmp_path)}", setup_script="echo ok > built.txt\n")
    prepared = asyncio.run(workspaces(database, tmp_path).prepare(session(), print))
    assert (prepared.directory / "built.txt").read_text() == "ok\n"


def test_http_with_credentials_from_a_tenant_secret(database: Database, tmp_path: Path) -> None:
    served = tmp_path / "served"
    served.mkdir()
    remote = bare_remote(served)
    secrets = SealedTenantSecrets(database)
    secrets.store(TENANT, "git-token", f"ann:{PASSWORD}")
    runner = RecordingRunner()
    one = session()
    with GitHttpServer(served, username="ann", password=PASSWORD) as server:
        register(database, f"{server.url}/project.git", credentials_secret="git-token")
        service = workspaces(database, tmp_path, secrets, runner)

        async def attempt() -> dict:
            prepared = await service.prepare(one, print)
            (prepared.directory / "x.txt").write_text("x\n")
            return await service.deliver(one, prepared, "agent-1", "a@agents.indorch")

        result = asyncio.run(attempt())
        assert server.requests_refused >= 1  # git asked without, was challenged, then had them
    assert "x.txt" in result["patch"]
    assert remote_branch_files(remote, f"indorch/{one.id}")["x.txt"] == "x\n"
    assert all(PASSWORD not in " ".join(argv) for argv, _ in runner.calls)
    with_secret = [argv for argv, env in runner.calls if PASSWORD in env.values()]
    assert {next(a for a in argv if a in {"fetch", "push"}) for argv in with_secret} == {
        "fetch",
        "push",
    }
    assert len(with_secret) == 2
    assert all("DATABASE_URL" not in env for _, env in runner.calls)


def test_http_with_wrong_credentials_fails_with_no_secret_in_the_reason(
    database: Database, tmp_path: Path
) -> None:
    served = tmp_path / "served"
    served.mkdir()
    bare_remote(served)
    secrets = SealedTenantSecrets(database)
    wrong = "wr0ng-pa55-leaky"
    secrets.store(TENANT, "git-token", f"ann:{wrong}")
    with GitHttpServer(served, username="ann", password=PASSWORD) as server:
        register(database, f"{server.url}/project.git", credentials_secret="git-token")
        with pytest.raises(WorkspaceFailed) as failed:
            asyncio.run(workspaces(database, tmp_path, secrets).prepare(session(), print))
    reason = failed.value.reason
    assert reason.startswith(f"repository project: fetch from {server.url}/project.git failed")
    assert "Authentication failed" in reason or "401" in reason, reason
    assert wrong not in reason and PASSWORD not in reason


def test_a_missing_tenant_secret_is_said(database: Database, tmp_path: Path) -> None:
    register(database, f"file://{bare_remote(tmp_path)}", credentials_secret="nope")
    with pytest.raises(WorkspaceFailed, match="tenant secret 'nope' not found"):
        asyncio.run(
            workspaces(database, tmp_path, SealedTenantSecrets(database)).prepare(session(), print)
        )
