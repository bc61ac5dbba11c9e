"""Sessions on a managed runtime, through the real wave supervisor: a session completes on the
tenant's sandboxed server (its sealed password opened to talk to it); when the runtime dies
mid-session, the session ends ORPHANED, the runtime is restarted as a new agent, and the retry
completes there (the existing ORPHANED -> retry path)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Coroutine
from datetime import timedelta
from pathlib import Path
from typing import Any

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
from standins.scripted_model import ScriptedModel
from tests.integration.database.support import new_tenant

pytestmark = pytest.mark.timeout(400)
OPERATOR = Caller.operator()
SETTINGS = SupervisionSettings(poll_seconds=0.3, orphan_after_seconds=1.0)


def wave(
    database: Database, host: RuntimeHost, tenant: str, owner: str
) -> Coroutine[Any, Any, list[SessionOutcome]]:
    """The tenant's due sessions claimed now, and their wave's run (to be awaited), with their
    workspaces inside the runtimes of `host` (the test's runtime root)."""
    factory = ServiceFactory(database, runtime_host=host)
    service = factory.sessions()
    deadline = time.monotonic() + 10
    while not (
        ids := [
            s.id
            for s in service.claim_pending(
                tenant, 10, timedelta(seconds=60), lambda _: owner
            ).sessions
        ]
    ):
        assert time.monotonic() < deadline, "nothing to claim"
        time.sleep(0.2)
    supervisor = factory.supervisor(OpenCodeResource(), tenant, owner, SETTINGS)
    return supervisor.run(ids)


def test_a_dead_runtimes_session_is_orphaned_and_its_retry_completes_on_the_restarted_one(
    migrated_postgres_copy: str,
    runtime_root: Path,
    scripted_model_url: str,
    scripted_model: ScriptedModel,
    opencode_binary: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(SECRET_KEY_VAR, Fernet.generate_key().decode())
    database = Database(migrated_postgres_copy)
    settings = RuntimeSettings(
        root=runtime_root, opencode_config_json=json.dumps(provider_config(scripted_model_url))
    )
    host = RuntimeHost(settings)
    factory = ServiceFactory(database)
    manager = factory.runtimes(host)
    tenant = new_tenant(database, "w")
    try:
        first = manager.start(OPERATOR, tenant)
        service = ServiceFactory(database, retry_base_seconds=0.2).sessions()
        session = service.submit(
            Caller.operator(),
            tenant,
            SubmitSession(
                title="long", prompt="[script:hang attempts=1] A long one.", max_retries=2
            ),
        )

        async def kill_mid_session() -> list[SessionOutcome]:
            task = asyncio.ensure_future(wave(database, host, tenant, "wave-1"))
            while not any(
                request["script"] == "hang" and "A long one." in str(request["body"])
                for request in scripted_model.requests()
            ):
                assert not task.done(), task.result()
                await asyncio.sleep(0.1)
            assert first.pid
            os.kill(processes.process_tree(first.pid)[-1], signal.SIGKILL)  # the server dies
            return await task

        [outcome] = asyncio.run(kill_mid_session())
        assert outcome.status == "ORPHANED", outcome

        report = manager.reconcile(OPERATOR)
        assert tenant in report.restarted, report
        (second,) = manager.list(OPERATOR, tenant)
        assert second.agent_id != first.agent_id
        agents = {view.agent.id: view.agent for view in factory.agents().list(OPERATOR, tenant)}
        assert agents[second.agent_id or ""].active
        assert first.agent_id not in agents or not agents[first.agent_id].active

        deadline = time.monotonic() + 10
        while not service.retry_due(tenant):
            assert time.monotonic() < deadline, "the orphaned session was not retried"
            time.sleep(0.3)
        [outcome] = asyncio.run(wave(database, host, tenant, "wave-2"))
        assert outcome.status == "COMPLETED", outcome
        done = service.get(Caller.operator(), tenant, session.id)
        assert done.status is SessionStatus.COMPLETED and done.agent_id == second.agent_id
    finally:
        for runtime in manager.list(OPERATOR, tenant):
            if runtime.pid and runtime.process_start:
                processes.stop(processes.ProcessHandle(runtime.pid, runtime.process_start))
        database.dispose()
