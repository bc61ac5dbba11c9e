"""Sessions on a tenant's repository, end to end: a wave on a real OpenCode server driven by the
scripted model, real git remotes (file:// and `git http-backend` over HTTP with credentials).

Contract: two concurrent sessions of one tenant on one repository each work in a worktree of
their own and push their own branch `indorch/<session id>` holding only their own change, the
patch stored as the result (`indorch session patch` prints it), committed as the agent with the
title as message; their worktrees are gone afterwards. A push the remote refuses, a ref that does
not exist, a failing setup script and wrong credentials each end the session FAILED with a clear
reason, which never holds the secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pytest

from domain.agent import Agent
from domain.caller import Caller
from domain.code_repository import CodeRepository
from domain.session import Session, SessionStatus
from domain.supervision_policy import SupervisionSettings
from domain.tenant import Tenant
from orchestrator_defs.sessions.job import session_wave
from resources.database import Database, tenant_scope, unit_of_work
from resources.database_resource import DatabaseResource
from resources.opencode.resource import OpenCodeResource
from resources.redis.resource import RedisResource
from resources.supervision_config import SupervisionConfig
from services.code_repositories import CodeRepositories
from services.session_outcome import SessionOutcome
from services.session_service import SessionService, SubmitSession
from services.session_workspaces import SessionWorkspaces, WorkspaceLayout
from services.supervision.wave import WaveSupervisor
from standins.git_http_server import GitHttpServer
from standins.opencode_server import OpenCodeServer
from tests.integration.cli.support import ok
from tests.integration.repositories.support import (
    SealedTenantSecrets,
    bare_remote,
    git,
    reject_pushes,
    remote_branch_files,
)

TENANT = "acme"
PASSWORD = "http-pa55word-of-acme"


@dataclass
class World:
    url: str
    database: Database
    service: SessionService
    agent: Agent
    root: Path
    secrets: SealedTenantSecrets

    def register(self, url: str, **fields: object) -> None:
        repository = CodeRepository(tenant_id=TENANT, name="project", url=url, **fields)
        CodeRepositories(self.database).register(Caller.operator(), repository)

    def submit(self, prompt: str, title: str, **fields: object) -> str:
        request = SubmitSession(
            title=title, prompt=prompt, repository="project", max_retries=0, **fields
        )
        return self.service.submit(Caller.operator(), TENANT, request).id

    def session(self, session_id: str) -> Session:
        return self.service.get(Caller.operator(), TENANT, session_id)

    def run_wave(self, **settings: object) -> list[SessionOutcome]:
        claim = self.service.claim_pending(TENANT, 10, timedelta(seconds=60), lambda s: "wave-r")
        supervisor = self.supervisor(claim.owner, **settings)
        ids = [session.id for session in claim.sessions]
        return asyncio.run(asyncio.wait_for(supervisor.run(ids), timeout=120))

    def supervisor(self, owner: str, **settings: object) -> WaveSupervisor:
        return WaveSupervisor(
            self.database,
            OpenCodeResource(),
            tenant=TENANT,
            owner=owner,
            settings=SupervisionSettings(poll_seconds=0.2, **settings),  # type: ignore[arg-type]
            workspaces=SessionWorkspaces(
                self.database, WorkspaceLayout(self.root / "workspaces"), secrets=self.secrets
            ),
        )


@pytest.fixture
def world(
    tmp_path: Path, opencode_server: OpenCodeServer, migrated_sqlite_url: str
) -> Iterator[World]:
    url = migrated_sqlite_url  # the run's migrated template, copied: no migration per test
    database = Database(url)
    with unit_of_work(database) as uow:
        uow.tenants.add(Tenant(slug=TENANT, name="Acme"))
    with tenant_scope(TENANT), unit_of_work(database) as uow:
        agent = uow.agents.add(
            Agent(tenant_id=TENANT, name="builder", server_url=opencode_server.url)
        )
    try:
        yield World(
            url, database, SessionService(database), agent, tmp_path, SealedTenantSecrets(database)
        )
    finally:
        database.dispose()


def test_two_concurrent_sessions_push_their_own_branches(world: World) -> None:
    remote = bare_remote(world.root)
    world.register(f"file://{remote}")
    first = world.submit('[script:write path=one.txt content="one\\n"] First.', "First change")
    second = world.submit('[script:write path=two.txt content="two\\n"] Second.', "Second change")

    outcomes = world.run_wave()

    assert {o.session_id: o.status for o in outcomes} == {
        first: "COMPLETED",
        second: "COMPLETED",
    }, [o.reason for o in outcomes]
    for session_id, name, content in ((first, "one.txt", "one\n"), (second, "two.txt", "two\n")):
        branch = f"indorch/{session_id}"
        assert remote_branch_files(remote, branch) == {"README.md": "# project\n", name: content}
        session = world.session(session_id)
        assert session.result is not None and session.result["branch"] == branch
        patch = ok(world.url, "session", "patch", "-t", TENANT, session_id)
        assert patch == session.result["patch"]
        assert f"+++ b/{name}" in patch and patch.count("+++ b/") == 1
        author, subject = git(remote, "log", "-1", "--format=%an|%s", branch).strip().split("|")
        assert (author, subject) == ("builder", session.title)
        directory = Path(session.metadata["workspace"]["directory"])
        assert directory.name == session_id and not directory.exists()
    assert (
        world.session(first).metadata["workspace"]["directory"]
        != (world.session(second).metadata["workspace"]["directory"])
    )


def test_a_push_the_remote_refuses_fails_the_session(world: World) -> None:
    remote = bare_remote(world.root)
    reject_pushes(remote, "no pushes on fridays")
    world.register(f"file://{remote}")
    session_id = world.submit('[script:write path=x.txt content="x"] Go.', "Refused")

    [outcome] = world.run_wave()

    assert outcome.status == "FAILED"
    session = world.session(session_id)
    assert f"push of indorch/{session_id}" in session.status_reason
    assert "rejected" in session.status_reason and "no pushes on fridays" in session.status_reason
    assert f"indorch/{session_id}" not in git(remote, "branch", "--list")


def test_a_missing_ref_fails_the_session_before_any_agent_session(world: World) -> None:
    world.register(f"file://{bare_remote(world.root)}")
    session_id = world.submit("[script:text] Hi.", "Nowhere", ref="no-such-ref")

    world.run_wave()

    session = world.session(session_id)
    assert session.status is SessionStatus.FAILED
    assert session.status_reason == "ref 'no-such-ref' not found in repository project"
    assert session.agent_session_id is None
    assert session.error == {"reason": session.status_reason, "retryable": False}


def test_a_failing_setup_script_fails_the_attempt_with_its_tail(world: World) -> None:
    script = "echo 'resolving dependencies'\necho 'error: no matching version' >&2\nexit 4\n"
    world.register(f"file://{bare_remote(world.root)}", setup_script=script)
    session_id = world.submit("[script:text] Hi.", "Setup breaks")

    world.run_wave()

    session = world.session(session_id)
    assert session.status is SessionStatus.FAILED
    assert session.status_reason.startswith("setup script failed (exit 4): ")
    assert session.status_reason.endswith("error: no matching version")
    output = "".join(
        event.data["output"]
        for event in world.service.events(Caller.operator(), TENANT, session_id)
        if event.event_type == "workspace.setup"
    )
    assert "resolving dependencies" in output and "no matching version" in output


def test_a_setup_script_runs_in_the_worktree_before_the_prompt(world: World) -> None:
    remote = bare_remote(world.root)
    world.register(f"file://{remote}", setup_script="echo built > build.log\n")
    session_id = world.submit('[script:write path=a.txt content="a"] Go.', "With setup")

    world.run_wave()

    assert world.session(session_id).status is SessionStatus.COMPLETED
    files = remote_branch_files(remote, f"indorch/{session_id}")
    assert files["build.log"] == "built\n" and files["a.txt"] == "a"


def test_http_credentials_work_and_wrong_ones_fail_without_the_secret(world: World) -> None:
    served = world.root / "served"
    served.mkdir()
    remote = bare_remote(served)
    with GitHttpServer(served, username="acme", password=PASSWORD) as server:
        world.register(f"{server.url}/project.git", credentials_secret="git")
        world.secrets.store(TENANT, "git", f"acme:{PASSWORD}")
        good = world.submit('[script:write path=h.txt content="h"] Go.', "Over HTTP")
        world.run_wave()
        assert world.session(good).status is SessionStatus.COMPLETED
        assert remote_branch_files(remote, f"indorch/{good}")["h.txt"] == "h"

        wrong = "acme-wrong-pa55"
        world.secrets.store(TENANT, "git", f"acme:{wrong}")
        bad = world.submit("[script:text] Hi.", "Wrong credentials")
        world.run_wave()
    session = world.session(bad)
    assert session.status is SessionStatus.FAILED
    assert session.status_reason.startswith(f"repository project: fetch from {server.url}")
    everything = session.model_dump_json() + "".join(
        str(e.data) + e.reason for e in world.service.events(Caller.operator(), TENANT, bad)
    )
    assert wrong not in everything and PASSWORD not in everything


def test_sessions_without_a_repository_get_a_scratch_workspace_each(
    world: World, opencode_server: OpenCodeServer
) -> None:
    """By default, two sessions of one tenant writing the same path each write their own
    tree; no tenant worktree is made on the server, and the trees' files go afterwards (the
    directories stay: warm slots for the tenant's next sessions)."""
    ids = [
        world.service.submit(
            Caller.operator(),
            TENANT,
            SubmitSession(
                title=f"Scratch {n}",
                prompt=f'[script:write path=same.txt content="{n}"] Go.',
                max_retries=0,
            ),
        ).id
        for n in (1, 2)
    ]

    outcomes = world.run_wave()

    assert [o.status for o in outcomes] == ["COMPLETED", "COMPLETED"]
    directories = set()
    for session_id in ids:
        session = world.session(session_id)
        assert session.result is not None
        assert [f["file"] for f in session.result["files"]] == ["same.txt"]
        assert "patch" not in session.result
        directory = Path(session.metadata["workspace"]["directory"])
        assert directory.name.startswith("slot-") and os.listdir(directory) == []
        directories.add(directory)
    assert len(directories) == 2
    with tenant_scope(TENANT), unit_of_work(world.database) as uow:
        assert uow.workspaces.list() == []


def test_a_wave_that_dies_leaves_the_worktree_to_the_wave_that_adopts_the_session(
    world: World,
) -> None:
    remote = bare_remote(world.root)
    world.register(f"file://{remote}")
    session_id = world.submit("[script:slow seconds=3] Take your time.", "Adopted")
    claim = world.service.claim_pending(TENANT, 1, timedelta(seconds=60), lambda s: "doomed")

    async def die_mid_session() -> None:
        task = asyncio.create_task(world.supervisor("doomed").run([session_id]))
        while world.session(session_id).status is not SessionStatus.RUNNING:
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(die_mid_session())
    session = world.session(session_id)
    assert session.status is SessionStatus.RUNNING and claim.owner == "doomed"
    directory = Path(session.metadata["workspace"]["directory"])
    assert directory.is_dir()  # still the running session's: not removed with the wave

    world.service.release_leases(TENANT, "doomed")
    adopting = world.service.lease_unsupervised(
        TENANT, 10, timedelta(seconds=60), lambda s: "adopter"
    )
    [outcome] = asyncio.run(
        asyncio.wait_for(world.supervisor(adopting.owner).run([session_id]), timeout=60)
    )

    assert outcome.status == "COMPLETED", outcome.reason
    assert "session.adopted" in [
        e.event_type for e in world.service.events(Caller.operator(), TENANT, session_id)
    ]
    assert set(remote_branch_files(remote, f"indorch/{session_id}")) == {"README.md"}
    assert not directory.exists()


def test_the_agent_cannot_write_outside_its_worktree(world: World) -> None:
    """The session's rules deny `external_directory`: a write to an absolute path outside the
    worktree is refused by the server (no permission asked, nothing written)."""
    remote = bare_remote(world.root)
    world.register(f"file://{remote}")
    outside = world.root / "outside" / "stolen.txt"
    session_id = world.submit(f'[script:write path={outside} content="x"] Escape.', "Escape")

    [outcome] = world.run_wave()

    assert not outside.exists()
    events = world.service.events(Caller.operator(), TENANT, session_id)
    assert {"tool": "write", "status": "error"} in [
        e.data for e in events if e.event_type == "agent.tool"
    ]
    assert "agent.permission" not in [e.event_type for e in events]
    assert outcome.status == "COMPLETED"
    assert set(remote_branch_files(remote, f"indorch/{session_id}")) == {"README.md"}


def test_the_session_wave_job_works_on_the_repository(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Dagster job's wiring (`ServiceFactory.supervisor`) gives sessions their worktrees
    under `INDORCH_WORKSPACES_DIR` and pushes their branches."""
    monkeypatch.setenv("INDORCH_WORKSPACES_DIR", str(world.root / "job-workspaces"))
    remote = bare_remote(world.root)
    world.register(f"file://{remote}")
    session_id = world.submit('[script:write path=job.txt content="job"] Go.', "Through the job")
    claim = world.service.claim_pending(TENANT, 10, timedelta(seconds=60), lambda s: "wave-job")
    config = {
        "tenant": TENANT,
        "session_ids": [s.id for s in claim.sessions],
        "wave_id": "wave-job",
    }

    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("tenants", [TENANT])
        result = session_wave.execute_in_process(
            run_config={"ops": {"supervise_wave": {"config": config}}},
            resources={
                "database": DatabaseResource(url=world.url),
                "opencode": OpenCodeResource(),
                "supervision": SupervisionConfig(poll_seconds=0.3),
                "redis": RedisResource(url=None),
            },
            instance=instance,
            partition_key=TENANT,
        )

    assert result.success
    session = world.session(session_id)
    assert session.status is SessionStatus.COMPLETED, session.status_reason
    assert remote_branch_files(remote, f"indorch/{session_id}")["job.txt"] == "job"
    directory = Path(session.metadata["workspace"]["directory"])
    assert directory.is_relative_to(world.root / "job-workspaces") and not directory.exists()
