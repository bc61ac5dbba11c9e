"""The runtime sensor, evaluated as Dagster does: a tenant with managed runtimes enabled and a
pending session gets its runtime started; with no session left it is stopped once idle."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest
from cryptography.fernet import Fernet

from domain.caller import Caller
from domain.runtime import RuntimeSlotUnavailable, RuntimeStatus
from resources.database import Database
from resources.database_resource import DatabaseResource
from sensors.runtimes import runtime_sensor
from services.factory import ServiceFactory
from services.session_service import SubmitSession
from standins.opencode_config import provider_config
from tests.integration.database.support import new_tenant

pytestmark = pytest.mark.timeout(300)


def tick(url: str) -> str:
    with dg.build_sensor_context(resources={"database": DatabaseResource(url=url)}) as context:
        result = runtime_sensor(context)
    assert isinstance(result, dg.SkipReason)
    return result.skip_message or ""


def test_runtime_starts_on_work_and_stops_when_idle(
    migrated_postgres_copy: str,
    runtime_root: Path,
    scripted_model_url: str,
    opencode_binary: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = runtime_root / "opencode.json"
    config.write_text(json.dumps(provider_config(scripted_model_url)))
    monkeypatch.setenv("INDORCH_RUNTIME_ROOT", str(runtime_root))
    monkeypatch.setenv("INDORCH_RUNTIME_OPENCODE_CONFIG", str(config))
    monkeypatch.setenv("INDORCH_SECRET_KEY", Fernet.generate_key().decode())
    database = Database(migrated_postgres_copy)
    try:
        tenant = new_tenant(database, "s")
        factory = ServiceFactory(database)
        # A start enables managed runtimes: here one with no room in the budget (its record
        # WAITING_FOR_SLOT, no server started for nothing), then stopped, as an operator would.
        with monkeypatch.context() as no_room, pytest.raises(RuntimeSlotUnavailable):
            no_room.setenv("INDORCH_RUNTIME_MEMORY_BUDGET_MB", "0")
            factory.runtimes().start(Caller.operator(), tenant)
        factory.runtimes().stop(Caller.operator(), tenant)
        (runtime,) = factory.runtimes().list(Caller.operator(), tenant)
        assert runtime.status is RuntimeStatus.STOPPED and runtime.pid is None
        assert "nothing to do" in tick(migrated_postgres_copy)  # no work: stays stopped

        factory.sessions().submit(Caller.operator(), tenant, SubmitSession(title="t", prompt="p"))
        assert f"started {tenant}" in tick(migrated_postgres_copy)
        (runtime,) = factory.runtimes().list(Caller.operator(), tenant)
        assert runtime.status is RuntimeStatus.LIVE

        factory.sessions().cancel(
            Caller.operator(), tenant, factory.sessions().list(Caller.operator(), tenant)[0].id
        )
        monkeypatch.setenv("INDORCH_RUNTIME_IDLE_SECONDS", "0")
        assert f"stopped idle {tenant}" in tick(migrated_postgres_copy)
        (runtime,) = factory.runtimes().list(Caller.operator(), tenant)
        assert runtime.status is RuntimeStatus.STOPPED and runtime.pid is None
    finally:
        for runtime in ServiceFactory(database).runtimes().list(Caller.operator()):
            if runtime.status is RuntimeStatus.LIVE:
                ServiceFactory(database).runtimes().stop(Caller.operator(), runtime.tenant_id)
        database.dispose()
