"""`file://` remotes on managed runtimes: git runs as the tenant's OS user in its sandbox, so the
remote's path is mounted there, and only when that user may read it (read-write when it may
write it: the session's branch is pushed back there).

Adversarial: tenant B names A's repository (A's user's, 0700) as its own `file://` remote, and
a link to it from a directory of its choosing: its session fails saying the path is not
readable by its OS user, and nothing of A's repository reaches B's session or the remote.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from domain.caller import Caller
from domain.code_repository import CodeRepository
from domain.supervision_policy import SupervisionSettings
from resources.database import Database
from resources.opencode.resource import OpenCodeResource
from resources.runtime_host import processes
from resources.runtime_host.host import RuntimeHost, RuntimeSettings
from resources.secret_box import SECRET_KEY_VAR
from services.factory import ServiceFactory
from services.session_outcome import SessionOutcome
from services.session_service import SubmitSession
from standins.opencode_config import provider_config
from tests.integration.database.support import new_tenant
from tests.integration.repositories.support import bare_remote, git, remote_branch_files
from tests.integration.runtime.conftest import start_runtimes

pytestmark = pytest.mark.timeout(400)
OPERATOR = Caller.operator()
SETTINGS = SupervisionSettings(poll_seconds=0.3)
A_ONLY = "a-private-code-5e1f"


@pytest.fixture
def served() -> Iterator[Path]:
    """A directory every user may pass through (not pytest's private one)."""
    directory = Path(tempfile.mkdtemp(prefix="indorch-served-"))
    os.chmod(directory, 0o711)
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def give_to(path: Path, uid: int, gid: int) -> None:
    for base, dirs, files in os.walk(path):
        for name in [base, *(os.path.join(base, f) for f in dirs + files)]:
            os.lchown(name, uid, gid)
    os.chmod(path, 0o700)


def test_a_tenants_file_remote_works_in_its_runtime_and_another_tenant_cannot_name_it(
    migrated_postgres_copy: str,
    runtime_root: Path,
    scripted_model_url: str,
    opencode_binary: Path,
    served: Path,
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
    try:
        runtime_a, runtime_b = start_runtimes(manager, host, (a, b))
        owner = os.stat(runtime_root / a / "home")
        remote = bare_remote(served / "a", files={"README.md": f"{A_ONLY}\n"})
        give_to(served / "a", owner.st_uid, owner.st_gid)  # A's user's, 0700
        decoy = served / "b"  # B's own directory, with a link to A's repository in it
        decoy.mkdir(mode=0o755)
        (decoy / "linked.git").symlink_to(remote)
        repositories = factory.repositories()
        repositories.register(
            OPERATOR, CodeRepository(tenant_id=a, name="app", url=f"file://{remote}")
        )
        for name, path in (("stolen", remote), ("linked", decoy / "linked.git")):
            repositories.register(
                OPERATOR, CodeRepository(tenant_id=b, name=name, url=f"file://{path}")
            )

        def submit(tenant: str, repository: str) -> str:
            command = "cat README.md > seen.txt; echo change > change.txt"
            return (
                factory.sessions()
                .submit(
                    Caller.operator(),
                    tenant,
                    SubmitSession(
                        title=f"On {repository}",
                        prompt=f"[script:bash command={json.dumps(command)} reply=Done.]",
                        repository=repository,
                        max_retries=0,
                    ),
                )
                .id
            )

        def run(tenant: str) -> list[SessionOutcome]:
            owner_name = f"wave-{tenant}"
            claimed = factory.sessions().claim_pending(
                tenant, 10, timedelta(seconds=60), lambda _: owner_name
            )
            supervisor = factory.supervisor(OpenCodeResource(), tenant, owner_name, SETTINGS)
            return asyncio.run(supervisor.run([s.id for s in claimed.sessions]))

        mine = submit(a, "app")
        [outcome_a] = run(a)
        stolen, linked = submit(b, "stolen"), submit(b, "linked")
        outcomes_b = run(b)
    finally:
        for runtime in manager.list(OPERATOR):
            if runtime.pid and runtime.process_start:
                processes.stop(processes.ProcessHandle(runtime.pid, runtime.process_start))
        database.dispose()

    # A's session fetched from and pushed to its own file:// remote, from inside its sandbox.
    assert outcome_a.status == "COMPLETED", outcome_a
    give_to(served / "a", 0, 0)  # the test's git (root) reads it: git refuses another's repo
    done = factory.sessions().get(Caller.operator(), a, mine)
    assert done.agent_id == runtime_a.agent_id and done.metadata["workspace"]["in_runtime"]
    pushed = remote_branch_files(remote, f"indorch/{mine}")
    assert pushed["seen.txt"] == f"{A_ONLY}\n" and pushed["change.txt"] == "change\n"

    # B's sessions, on B's runtime, were refused before any git ran: saying why, not retried.
    assert {o.session_id: o.status for o in outcomes_b} == {stolen: "FAILED", linked: "FAILED"}
    for session_id in (stolen, linked):
        failed = factory.sessions().get(Caller.operator(), b, session_id)
        assert failed.agent_id in (None, runtime_b.agent_id)
        assert failed.retry_count == 0
        assert "not readable by the tenant's OS user" in failed.status_reason, failed
        everything = failed.model_dump_json() + "".join(
            str(e.data) + e.reason
            for e in factory.sessions().events(Caller.operator(), b, session_id)
        )
        assert A_ONLY not in everything
    assert not (runtime_root / b / "workspaces" / "mirrors" / "stolen.git").exists()
    assert not (runtime_root / b / "workspaces" / "mirrors" / "linked.git").exists()
    # Nothing of B's reached A's remote.
    branches = git(remote, "branch", "--list", "--format=%(refname:short)").split()
    assert sorted(branches) == sorted(["main", f"indorch/{mine}"]), branches
