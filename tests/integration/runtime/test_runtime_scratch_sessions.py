"""Sessions without a repository on a tenant's managed runtime, with the default supervision
settings: each gets a scratch workspace of its own inside the runtime (its OS user's), so two
concurrent sessions of one tenant never share a tree; their files go when the sessions end (the
directories stay, warm slots for the tenant's next sessions: `services.workspace_slots`)."""

from __future__ import annotations

import asyncio
import json
import os
import time
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from domain.caller import Caller
from domain.session import SessionStatus
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

pytestmark = pytest.mark.timeout(400)
OPERATOR = Caller.operator()
RELEASED = "sessions-seen"  # in the runtime's workspaces, two levels above each session's slot
# A session's agent waits for it (at most 90 s) instead of sleeping a fixed time.
LINGER = f"for i in $(seq 450); do [ -e ../../{RELEASED} ] && break; sleep 0.2; done"


def test_two_concurrent_sessions_of_one_tenant_never_share_a_directory(
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
    tenant = new_tenant(database, "s")
    sessions_dir = runtime_root / tenant / "workspaces" / "sessions"
    try:
        runtime = manager.start(OPERATOR, tenant)
        ids = [
            factory.sessions()
            .submit(
                Caller.operator(),
                tenant,
                SubmitSession(
                    title=f"Scratch {n}",
                    # Both write the same path, then linger until the test has seen both at
                    # work at once (it drops RELEASED in the runtime's workspaces).
                    prompt="[script:bash command="
                    + json.dumps(f"echo session-{n} >> same.txt; ls -a > seen.txt; {LINGER}")
                    + " reply=Done.]",
                    max_retries=0,
                ),
            )
            .id
            for n in (1, 2)
        ]

        def directory_of(session_id: str) -> Path | None:
            recorded = factory.sessions().get(Caller.operator(), tenant, session_id).metadata
            directory = (recorded.get("workspace") or {}).get("directory")
            return Path(directory) if directory else None

        async def run_and_look() -> tuple[list[SessionOutcome], dict[str, str]]:
            claimed = factory.sessions().claim_pending(
                tenant, 10, timedelta(seconds=60), lambda _: "wave-s"
            )
            assert sorted(s.id for s in claimed.sessions) == sorted(ids)
            # The default settings: nothing says "scratch workspace per session".
            supervisor = factory.supervisor(
                OpenCodeResource(), tenant, "wave-s", SupervisionSettings(poll_seconds=0.3)
            )
            task = asyncio.ensure_future(supervisor.run(ids))
            deadline = time.monotonic() + 180
            while not all((d := directory_of(i)) and (d / "same.txt").exists() for i in ids):
                assert not task.done(), task.result()
                assert time.monotonic() < deadline, "the sessions did not both write"
                await asyncio.sleep(0.2)
            # Both at work at once, each in its own directory, the tenant's user's.
            directories = {i: directory_of(i) for i in ids}
            seen = {i: (d / "same.txt").read_text() for i, d in directories.items() if d}
            owner = os.stat(runtime_root / tenant / "home").st_uid
            assert all(d and os.stat(d).st_uid == owner for d in directories.values())
            (runtime_root / tenant / "workspaces" / RELEASED).touch()  # both may finish now
            return await task, seen

        outcomes, seen = asyncio.run(run_and_look())
        assert runtime.agent_id
    finally:
        for live in manager.list(OPERATOR, tenant):
            if live.pid and live.process_start:
                processes.stop(processes.ProcessHandle(live.pid, live.process_start))
        database.dispose()

    assert [o.status for o in outcomes] == ["COMPLETED", "COMPLETED"], outcomes
    # Each tree held only its own session's line: nothing written by the other one.
    assert sorted(seen.values()) == ["session-1\n", "session-2\n"], seen
    directories = set()
    for session_id in ids:
        done = factory.sessions().get(Caller.operator(), tenant, session_id)
        assert done.status is SessionStatus.COMPLETED
        assert done.agent_id == runtime.agent_id
        directory = Path(done.metadata["workspace"]["directory"])
        assert directory.parent == sessions_dir and directory.name.startswith("slot-")
        assert done.metadata["agent_directory"] == str(directory)
        assert done.metadata["workspace"]["in_runtime"] is True
        # Its files gone with it; the directory kept warm for the tenant's next session.
        assert os.listdir(directory) == []
        directories.add(directory)
    assert len(directories) == 2
    # Nothing on the control plane's side, and no shared tenant worktree in the runtime.
    assert not (tmp_path / "control-plane-workspaces" / tenant).exists()
    assert not (runtime_root / tenant / "workspaces" / "default" / "same.txt").exists()
