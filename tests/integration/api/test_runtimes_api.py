"""The tenant's managed runtime through the API, on a host whose memory budget has no room: a
LEAD's start is recorded as a wait (202 WAITING_FOR_SLOT, its sessions stay queued), a stop
settles it; the other tenant sees none of it. (A real start is `tests/integration/runtime`'s.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.services import Services
from domain.runtime import RuntimeBudget
from domain.tenant import Role
from resources.runtime_host.host import RuntimeHost, RuntimeSettings
from services.factory import ServiceFactory
from tests.integration.api.conftest import ApiTenant
from tests.integration.api.support import refused

pytestmark = pytest.mark.usefixtures("secret_key")
RUNTIMES = "/api/v1/runtimes"


@pytest.fixture
def full_host_client(wiring: Services, tmp_path: Path) -> Iterator[TestClient]:
    settings = RuntimeSettings(
        root=tmp_path / "runtimes",
        budget=RuntimeBudget(memory_mb=100, runtime_mb=300),  # not even one fits
        opencode_config_json="{}",
        allow_unsandboxed=True,
    )
    factory = ServiceFactory(wiring.database, runtime_host=RuntimeHost(settings))
    with TestClient(create_app(Services(wiring.database, factory))) as client:
        yield client


def test_a_lead_starts_a_runtime_that_waits_for_a_slot_then_stops_it(
    full_host_client: TestClient, tenant_a: ApiTenant, tenant_b: ApiTenant
) -> None:
    client = full_host_client
    viewer = tenant_a.headers(Role.VIEWER)
    assert client.get(RUNTIMES, headers=viewer).json() == []
    refused(client.post(f"{RUNTIMES}/stop", headers=tenant_a.headers(Role.LEAD)), 404, "not_found")
    started = client.post(f"{RUNTIMES}/start", headers=tenant_a.headers(Role.LEAD))
    assert started.status_code == 202, started.text
    runtime = started.json()
    assert (runtime["tenant_id"], runtime["status"]) == (tenant_a.slug, "WAITING_FOR_SLOT")
    assert runtime["waiting_since"] is not None
    assert not {"pid", "os_user", "port", "process_start"} & set(runtime)
    assert client.get(RUNTIMES, headers=viewer).json() == [runtime]
    assert client.get(RUNTIMES, headers=tenant_b.headers(Role.ADMIN)).json() == []
    refused(client.post(f"{RUNTIMES}/stop", headers=tenant_b.headers(Role.ADMIN)), 404, "not_found")
    for role in (Role.MEMBER, Role.VIEWER):
        refused(client.post(f"{RUNTIMES}/start", headers=tenant_a.headers(role)), 403, "forbidden")
        refused(client.post(f"{RUNTIMES}/stop", headers=tenant_a.headers(role)), 403, "forbidden")
    stopped = client.post(f"{RUNTIMES}/stop", headers=tenant_a.headers(Role.ADMIN)).json()
    assert (stopped["status"], stopped["reason"]) == ("STOPPED", "stopped through the API")
