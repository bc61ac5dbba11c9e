"""A session on a tenant's repository, on the tenant's managed runtime: its mirror and worktree
are made inside the runtime's workspaces (owned by the tenant's OS user, 0700, mounted by its
sandbox), git and the setup script run as that user in its sandbox (the credentials reach git's
environment only), the agent works there and the wave pushes `indorch/<id>` with its change.
Another tenant's agent cannot read the worktree or the mirror.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet

from domain.caller import Caller
from domain.code_repository import CodeRepository
from domain.runtime import os_user_for
from domain.session import SessionStatus
from domain.supervision_policy import SupervisionSettings
from resources.database import Database
from resources.database.migrate import upgrade
from resources.opencode.control import agent_password
from resources.opencode.resource import OpenCodeResource
from resources.runtime_host import processes
from resources.runtime_host.host import RuntimeHost, RuntimeSettings
from resources.secret_box import SECRET_KEY_VAR
from services.factory import ServiceFactory
from services.session_outcome import SessionOutcome
from services.session_service import SubmitSession
from standins.git_http_server import GitHttpServer
from standins.opencode_config import provider_config
from tests.integration.database.support import new_tenant
from tests.integration.repositories.support import bare_remote, remote_branch_files

pytestmark = pytest.mark.timeout(400)
OPERATOR = Caller.operator()
SETTINGS = SupervisionSettings(poll_seconds=0.3)
PASSWORD = "git-pa55-of-tenant-a"
SETUP = "id -un > .setup-user\n"
ALLOW_ALL = [{"permission": "*", "pattern": "*", "action": "allow"}]
AGENT_COMMAND = "echo done-by-a > change.txt; sleep 8"


def bash_on_server(server_url: str, password: str, directory: Path, command: str) -> str:
    """A session on that server whose agent (the scripted model) runs `command` with the bash
    tool, allowed everything (outside its directory too: only the sandbox stops it); the
    tool's output."""
    marker = json.dumps(command)
    params = {"directory": str(directory)}
    with httpx.Client(base_url=server_url, auth=("opencode", password), timeout=30) as client:
        session = client.post("/session", params=params, json={"permission": ALLOW_ALL}).json()
        client.post(
            f"/session/{session['id']}/prompt_async",
            params=params,
            json={
                "parts": [{"type": "text", "text": f"[script:bash command={marker} reply=Ran.]"}]
            },
        ).raise_for_status()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            for message in client.get(f"/session/{session['id']}/message", params=params).json():
                for part in message["parts"]:
                    state = part.get("state") or {}
                    if part.get("type") == "tool" and state.get("status") in ("completed", "error"):
                        return str(state.get("output") or state.get("error") or "")
            time.sleep(0.5)
    raise AssertionError("the bash tool did not finish")


def test_a_repository_session_works_inside_its_tenants_runtime(
    fresh_postgres_url: str,
    runtime_root: Path,
    scripted_model_url: str,
    opencode_binary: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(SECRET_KEY_VAR, Fernet.generate_key().decode())
    monkeypatch.setenv("INDORCH_WORKSPACES_DIR", str(tmp_path / "control-plane-workspaces"))
    upgrade(fresh_postgres_url)
    database = Database(fresh_postgres_url)
    settings = RuntimeSettings(
        root=runtime_root, opencode_config_json=json.dumps(provider_config(scripted_model_url))
    )
    host = RuntimeHost(settings)
    factory = ServiceFactory(database, runtime_host=host)
    manager = factory.runtimes(host)
    a, b = new_tenant(database, "a"), new_tenant(database, "b")
    served = tmp_path / "served"
    served.mkdir()
    remote = bare_remote(served)
    git_server = GitHttpServer(served, username="ann", password=PASSWORD)
    # A git server on the loopback: the runtimes reach it only as the operator allows.
    monkeypatch.setenv("INDORCH_RUNTIME_NETWORK_ALLOW", git_server.url.removeprefix("http://"))
    try:
        runtime_a, runtime_b = manager.start(OPERATOR, a), manager.start(OPERATOR, b)
        factory.secrets().set(OPERATOR, a, "git-token", f"ann:{PASSWORD}")
        with git_server as server:
            factory.repositories().register(
                OPERATOR,
                CodeRepository(
                    tenant_id=a,
                    name="app",
                    url=f"{server.url}/project.git",
                    credentials_secret="git-token",
                    setup_script=SETUP,
                ),
            )
            session = factory.sessions().submit(
                Caller.operator(),
                a,
                SubmitSession(
                    title="Add a change",
                    prompt=f"[script:bash command={json.dumps(AGENT_COMMAND)} reply=Done.]",
                    repository="app",
                ),
            )
            workspaces = runtime_root / a / "workspaces"
            worktree, mirror = workspaces / "sessions" / session.id, workspaces / "mirrors"
            user_a = os.stat(runtime_root / a / "home")

            async def run_and_probe() -> tuple[SessionOutcome, str]:
                claimed = factory.sessions().claim_pending(
                    a, 10, timedelta(seconds=60), lambda _: "wave-a"
                )
                supervisor = factory.supervisor(OpenCodeResource(), a, "wave-a", SETTINGS)
                task = asyncio.ensure_future(supervisor.run([s.id for s in claimed.sessions]))
                deadline = time.monotonic() + 120
                while not (worktree / "change.txt").exists():
                    assert not task.done(), task.result()
                    assert time.monotonic() < deadline, "no change in the runtime's worktree"
                    await asyncio.sleep(0.2)
                # While A's agent works: everything of the session is A's user's.
                for top in (worktree, mirror):
                    for base, dirs, files in os.walk(top):
                        for name in [base, *(os.path.join(base, f) for f in dirs + files)]:
                            assert os.lstat(name).st_uid == user_a.st_uid, name
                mode = os.stat(workspaces)
                assert stat.S_IMODE(mode.st_mode) == 0o700 and mode.st_uid == user_a.st_uid
                # B's agent, on B's runtime, tries to read A's worktree and mirror.
                password_b = agent_password(
                    factory.agents().get(OPERATOR, b, runtime_b.agent_id or "").agent
                )
                assert password_b
                probe = await asyncio.to_thread(
                    bash_on_server,
                    runtime_b.server_url or "",
                    password_b,
                    runtime_root / b / "workspaces",
                    f"cat {worktree}/README.md; ls {worktree} {mirror}/app.git; "
                    f"cat {mirror}/app.git/config; echo probe-end",
                )
                [outcome] = await task
                return outcome, probe

            outcome, probe = asyncio.run(run_and_probe())
    finally:
        for runtime in manager.list(OPERATOR):
            if runtime.pid and runtime.process_start:
                processes.stop(processes.ProcessHandle(runtime.pid, runtime.process_start))
        database.dispose()

    assert outcome.status == "COMPLETED", outcome
    done = factory.sessions().get(Caller.operator(), a, session.id)
    assert done.status is SessionStatus.COMPLETED and done.agent_id == runtime_a.agent_id
    pushed = remote_branch_files(remote, f"indorch/{session.id}")
    assert pushed["change.txt"] == "done-by-a\n"
    assert pushed[".setup-user"] == f"{os_user_for(a)}\n"  # the setup script ran as A's user
    assert "change.txt" in (done.result or {}).get("patch", "")
    assert not worktree.exists()  # gone with the session; its branch is on the remote
    # The control plane's own workspaces directory holds nothing of A's.
    assert not (tmp_path / "control-plane-workspaces" / a / "sessions").exists()
    # B's agent saw neither (B's sandbox does not even mount them).
    assert "probe-end" in probe and "# project" not in probe and "[core]" not in probe, probe
    assert "No such file" in probe, probe
