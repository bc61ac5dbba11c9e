"""A session on a tenant's repository, on the tenant's managed runtime: its mirror and worktree
are made inside the runtime's workspaces (owned by the tenant's OS user, 0700, mounted by its
sandbox), git and the setup script run as that user in its sandbox (the credentials reach git's
environment only), the agent works there and the wave pushes `indorch/<id>` with its change.
Another tenant's agent cannot read the worktree or the mirror: not with `cat`, not with git
(`git -C`, `--git-dir`, `clone file://`), not with OpenCode's `read` tool, while the same probes by
the tenant's own agent see them.
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
from tests.integration.repositories.support import bare_remote, git, remote_branch_files
from tests.integration.runtime.conftest import start_runtimes

pytestmark = pytest.mark.timeout(400)
OPERATOR = Caller.operator()
SETTINGS = SupervisionSettings(poll_seconds=0.3)
PASSWORD = "git-pa55-of-tenant-a"
SETUP = "id -un > .setup-user\n"
ALLOW_ALL = [{"permission": "*", "pattern": "*", "action": "allow"}]
PROBED = "probes-done"  # in the runtime's workspaces: the test's sign that its probes are over
# A's agent makes its change, then works on until the probes are done (at most 90 s).
AGENT_COMMAND = (
    f"echo done-by-a > change.txt; for i in $(seq 450); do [ -e ../../{PROBED} ] && break; "
    "sleep 0.2; done"
)


PRINTABLE = "tr -c '[:print:]\\n' '?'"  # raw tree objects are binary


def git_probe(worktree: Path, mirror: Path) -> str:
    """Shell reads of a worktree and its mirror, then every git route to them an agent can
    name (`-C`, `--git-dir`, `clone file://`); ends with `probe-end`."""
    bare = mirror / "app.git"
    return (
        f"cat {worktree}/README.md; ls {worktree} {bare}; cat {bare}/config; "
        f"git -C {worktree} log; git -C {worktree} show HEAD:README.md; "
        f"git --git-dir={bare} cat-file -p HEAD; git --git-dir={bare} log --all; "
        f"git --git-dir={bare} cat-file --batch-all-objects --batch | {PRINTABLE}; "
        f"d=$(mktemp -d); git clone --mirror file://{bare} $d/stolen.git; "
        "git --git-dir=$d/stolen.git log --all; "
        f"git --git-dir=$d/stolen.git cat-file --batch-all-objects --batch | {PRINTABLE}; "
        "echo probe-end"
    )


def bash_on_server(server_url: str, password: str, directory: Path, command: str) -> str:
    """A session on that server whose agent (the scripted model) runs `command` with the bash
    tool, allowed everything (outside its directory too: only the sandbox stops it); the
    tool's output."""
    prompt = f"[script:bash command={json.dumps(command)} reply=Ran.]"
    return tool_on_server(server_url, password, directory, prompt)


def read_on_server(server_url: str, password: str, directory: Path, path: Path) -> str:
    """As `bash_on_server`, with OpenCode's `read` tool on `path`: what it read, or its error."""
    prompt = f"[script:read path={json.dumps(str(path))} reply=Read.]"
    return tool_on_server(server_url, password, directory, prompt)


def tool_on_server(server_url: str, password: str, directory: Path, prompt: str) -> str:
    """A session on that server prompted with `prompt` (one scripted tool call), allowed
    everything; the tool's output or error."""
    params = {"directory": str(directory)}
    with httpx.Client(base_url=server_url, auth=("opencode", password), timeout=30) as client:
        session = client.post("/session", params=params, json={"permission": ALLOW_ALL}).json()
        client.post(
            f"/session/{session['id']}/prompt_async",
            params=params,
            json={"parts": [{"type": "text", "text": prompt}]},
        ).raise_for_status()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            for message in client.get(f"/session/{session['id']}/message", params=params).json():
                for part in message["parts"]:
                    state = part.get("state") or {}
                    if part.get("type") == "tool" and state.get("status") in ("completed", "error"):
                        return str(state.get("output") or state.get("error") or "")
            time.sleep(0.1)
    raise AssertionError("the tool did not finish")


def test_a_repository_session_works_inside_its_tenants_runtime(
    migrated_postgres_copy: str,
    runtime_root: Path,
    scripted_model_url: str,
    opencode_binary: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(SECRET_KEY_VAR, Fernet.generate_key().decode())
    monkeypatch.setenv("INDORCH_WORKSPACES_DIR", str(tmp_path / "control-plane-workspaces"))
    database = Database(migrated_postgres_copy)
    settings = RuntimeSettings(
        root=runtime_root, opencode_config_json=json.dumps(provider_config(scripted_model_url))
    )
    host = RuntimeHost(settings)
    factory = ServiceFactory(database, runtime_host=host)
    manager = factory.runtimes(host)
    a, b = new_tenant(database, "a"), new_tenant(database, "b")
    served = tmp_path / "served"
    served.mkdir()
    remote = bare_remote(served, files={"README.md": "# project of tenant a\n"})
    first_commit = git(remote, "rev-parse", "main").strip()
    git_server = GitHttpServer(served, username="ann", password=PASSWORD)
    # A git server on the loopback: the runtimes reach it only as the operator allows.
    monkeypatch.setenv("INDORCH_RUNTIME_NETWORK_ALLOW", git_server.url.removeprefix("http://"))
    try:
        runtime_a, runtime_b = start_runtimes(manager, host, (a, b))
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

            async def run_and_probe() -> tuple[SessionOutcome, dict[str, str]]:
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
                # The probes, first by A's agent on A's runtime (they must see A's worktree and
                # mirror: a broken probe cannot pass), then by B's agent on B's runtime.
                probes: dict[str, str] = {}
                for tenant, runtime in (("a", runtime_a), ("b", runtime_b)):
                    owner = a if tenant == "a" else b
                    server = (
                        runtime.server_url or "",
                        agent_password(
                            factory.agents().get(OPERATOR, owner, runtime.agent_id or "").agent
                        )
                        or "",
                        runtime_root / owner / "workspaces",
                    )
                    probes[f"{tenant} git"] = await asyncio.to_thread(
                        bash_on_server, *server, git_probe(worktree, mirror)
                    )
                    probes[f"{tenant} read"] = await asyncio.to_thread(
                        read_on_server, *server, worktree / "README.md"
                    )
                    probes[f"{tenant} read mirror"] = await asyncio.to_thread(
                        read_on_server, *server, mirror / "app.git" / "config"
                    )
                (workspaces / PROBED).touch()  # A's agent may finish
                [outcome] = await task
                return outcome, probes

            outcome, probes = asyncio.run(run_and_probe())
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
    # A's agent saw its worktree and mirror by every route: the probes work.
    for name in ("a git", "a read", "a read mirror"):
        print(name, probes[name], sep="\n")
    probe_a = probes["a git"]
    # cat, show, the mirror's objects, the clone's objects
    assert probe_a.count("# project of tenant a") >= 4, probe_a
    # log, the mirror's log --all and objects, the clone's log --all and objects
    assert probe_a.count(first_commit) >= 5, probe_a
    assert probe_a.count("author Test <test@example.invalid>") >= 2, probe_a  # the raw commits
    assert "[core]" in probe_a and "probe-end" in probe_a, probe_a
    assert "# project of tenant a" in probes["a read"]
    assert "[core]" in probes["a read mirror"]
    # B's agent saw none of it (B's sandbox does not even mount them).
    for name in ("b git", "b read", "b read mirror"):
        probe = probes[name]
        print(name, probe, sep="\n")
        assert "# project" not in probe and "[core]" not in probe, probe
        assert first_commit not in probe and first_commit[:7] not in probe, probe
        assert "test@example.invalid" not in probe, probe
    probe_b = probes["b git"]
    assert "probe-end" in probe_b, probe_b
    for error in (
        "No such file",  # cat, ls
        "cannot change to",  # git -C
        "not a git repository",  # git --git-dir
        "does not appear to be a git repository",  # git clone file://
    ):
        assert error in probe_b, (error, probe_b)
    for name in ("b read", "b read mirror"):
        assert "File not found" in probes[name] or "Permission denied" in probes[name], probes
