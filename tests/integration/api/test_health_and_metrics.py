"""/health/ready asks the real dependencies now, /metrics tells the fleet's figures; neither needs a
key nor shows a secret.

Readiness: the database decides down (503); Redis, the Dagster daemon (a real `dagster-daemon`
on a fresh instance) and the agents (a real OpenCode server, and one where nothing listens) at
most degrade it (200). Metrics are read back with Prometheus' own parser.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import event
from sqlalchemy.engine import ExceptionContext

from api.app import create_app
from api.services import Services
from domain.agent import Agent
from domain.caller import Caller
from domain.tenant import Role
from resources.database import Database, tenant_scope, unit_of_work
from services.factory import ServiceFactory
from services.session_service import SubmitSession
from standins.opencode_server import OpenCodeServer
from tests.integration.api.conftest import OPERATOR, ApiTenant, _new_tenant
from tests.integration.opencode.conftest import (  # noqa: F401  (fixtures, used by name)
    opencode_binary,
    opencode_home,
    opencode_server,
    scripted_model,
    scripted_model_url,
)

NOTHING_LISTENS = "redis://127.0.0.1:1/0"
DEAD_DATABASE = "postgresql+psycopg://indorch:pw-never-shown@127.0.0.1:1/x?connect_timeout=1"
DAEMON_START_SECONDS = 120.0


def _wiring(url: str, redis_url: str | None, dagster_home: str | None = None) -> Services:
    database = Database(url)
    return Services(database, ServiceFactory(database), redis_url, dagster_home=dagster_home)


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, migrated_sqlite_url: str) -> str:
    """A database of this test's own: readiness counts every agent of the platform, so the
    agents other tests registered in a shared database would be counted too."""
    if request.param == "sqlite":
        return migrated_sqlite_url
    return request.getfixturevalue("migrated_postgres_copy")


def _ready(wiring: Services) -> tuple[int, dict, str]:
    with TestClient(create_app(wiring)) as client:
        answer = client.get("/health/ready")
    return answer.status_code, answer.json(), answer.text


def test_ready_when_the_database_and_redis_answer_and_nothing_else_is_configured(
    database_url: str, redis_url: str
) -> None:
    wiring = _wiring(database_url, redis_url)
    try:
        status, body, _ = _ready(wiring)
    finally:
        wiring.close()
    assert status == 200
    assert body["status"] == "ok"
    assert (body["database"], body["redis"]) == ("ok", "ok")
    assert body["dagster"] == "not configured"
    assert body["agents"] == {"status": "not configured", "up": 0, "total": 0}


def test_redis_down_is_degraded_and_still_ready(migrated_sqlite_url: str, redis_url: str) -> None:
    wiring = _wiring(migrated_sqlite_url, NOTHING_LISTENS)
    try:
        status, body, _ = _ready(wiring)
    finally:
        wiring.close()
    assert (status, body["status"], body["redis"]) == (200, "degraded", "down")


def test_the_database_down_is_down_503_and_says_no_more_than_that() -> None:
    database = Database(DEAD_DATABASE)
    refused: list[str] = []  # the engine's failed connections, as the driver reported them

    @event.listens_for(database.engine, "handle_error")
    def _failed(context: ExceptionContext) -> None:
        refused.append(type(context.original_exception).__name__)

    wiring = Services(database, ServiceFactory(database), NOTHING_LISTENS)
    try:
        status, body, text = _ready(wiring)
        # The readiness probes run in threads of their own: one may still be failing.
        deadline = time.monotonic() + 10
        while len(refused) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        wiring.close()
    assert status == 503
    assert (body["status"], body["database"]) == ("down", "down")
    assert "pw-never-shown" not in text and "127.0.0.1" not in text
    # The database's probe and the agents' (their listing) each tried once, and the driver's
    # refusal was the answer: no retries.
    assert refused == ["OperationalError", "OperationalError"]


def test_agents_are_probed_for_real_some_down_is_degraded(
    database_url: str,
    redis_url: str,
    opencode_server: OpenCodeServer,  # noqa: F811
) -> None:
    wiring = _wiring(database_url, redis_url)
    try:
        tenant = _new_tenant(wiring.factory)
        agents = wiring.factory.agents()
        agents.register(
            OPERATOR,
            Agent(tenant_id=tenant.slug, name="live", server_url=opencode_server.url),
            check=False,
        )
        status, body, _ = _ready(wiring)
        assert (status, body["status"], body["agents"]) == (
            200,
            "ok",
            {"status": "ok", "up": 1, "total": 1},
        )
        agents.register(
            OPERATOR,
            Agent(tenant_id=tenant.slug, name="gone", server_url="http://127.0.0.1:1"),
            check=False,
        )
        status, body, text = _ready(wiring)
    finally:
        wiring.close()
    assert (status, body["status"]) == (200, "degraded")
    assert body["agents"] == {"status": "down", "up": 1, "total": 2}
    assert opencode_server.url not in text and tenant.slug not in text


@pytest.fixture
def dagster_home(tmp_path: Path) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return home


@pytest.fixture
def empty_definitions(tmp_path: Path) -> Path:
    path = tmp_path / "no_assets.py"
    path.write_text("import dagster as dg\n\ndefs = dg.Definitions()\n")
    return path


def test_the_dagster_daemon_is_read_from_the_instance_heartbeats(
    migrated_sqlite_url: str,
    redis_url: str,
    dagster_home: Path,
    empty_definitions: Path,
    tmp_path: Path,
) -> None:
    wiring = _wiring(migrated_sqlite_url, redis_url, str(dagster_home))
    try:
        status, body, _ = _ready(wiring)
        assert (status, body["status"], body["dagster"]) == (200, "degraded", "down")

        daemon_binary = Path(sys.executable).with_name("dagster-daemon")
        log = (tmp_path / "daemon.log").open("wb")
        daemon = subprocess.Popen(
            [str(daemon_binary), "run", "-f", str(empty_definitions)],
            env={**os.environ, "DAGSTER_HOME": str(dagster_home)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + DAEMON_START_SECONDS
            while body["dagster"] != "ok":
                assert daemon.poll() is None, (tmp_path / "daemon.log").read_text()[-2000:]
                assert time.monotonic() < deadline, "the daemon's heartbeats were not seen"
                time.sleep(1)
                status, body, _ = _ready(wiring)
            assert (status, body["status"]) == (200, "ok")
        finally:
            os.killpg(daemon.pid, signal.SIGTERM)
            try:
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(daemon.pid, signal.SIGKILL)
                daemon.wait(timeout=10)
            log.close()
    finally:
        wiring.close()


# -- /metrics -----------------------------------------------------------------------------------


@pytest.fixture
def served(database_url: str, redis_url: str) -> Iterator[tuple[Services, TestClient]]:
    wiring = _wiring(database_url, redis_url)
    try:
        with TestClient(create_app(wiring)) as client:
            yield wiring, client
    finally:
        wiring.close()


def _samples(text: str) -> dict[tuple[str, frozenset], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def _value(samples: dict, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def test_metrics_tell_sessions_queue_tokens_cost_durations_agents_and_api_latency(
    served: tuple[Services, TestClient],
) -> None:
    wiring, client = served
    tenant: ApiTenant = _new_tenant(wiring.factory)
    sessions = wiring.factory.sessions()
    submitted = [
        sessions.submit(Caller.operator(), tenant.slug, SubmitSession(title=f"t{n}", prompt="p")).id
        for n in range(3)
    ]
    sessions.cancel(Caller.operator(), tenant.slug, submitted[0])
    with tenant_scope(tenant.slug), unit_of_work(wiring.database) as uow:
        uow.usage.record(date.today(), tokens_in=1200, tokens_out=300, cost_usd=0.25)
    agent = wiring.factory.agents().register(
        OPERATOR,
        Agent(
            tenant_id=tenant.slug,
            name="builder",
            server_url="http://127.0.0.1:4096",
            capacity=4,
        ),
        check=False,
    )
    for _ in range(3):
        assert client.get("/api/v1/whoami", headers=tenant.headers(Role.VIEWER)).status_code == 200
    missing = client.get("/api/v1/sessions/IND-nope/events", headers=tenant.headers())
    assert missing.status_code == 404

    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    samples = _samples(answer.text)
    slug = tenant.slug
    assert _value(samples, "indorch_fleet_snapshot_ok") == 1
    assert _value(samples, "indorch_sessions", tenant=slug, status="PENDING") == 2
    assert _value(samples, "indorch_sessions", tenant=slug, status="CANCELLED") == 1
    assert _value(samples, "indorch_queue_depth", tenant=slug) == 2
    assert _value(samples, "indorch_tokens_total", tenant=slug, direction="in") == 1200
    assert _value(samples, "indorch_tokens_total", tenant=slug, direction="out") == 300
    assert _value(samples, "indorch_cost_usd_total", tenant=slug) == pytest.approx(0.25)
    assert _value(samples, "indorch_recent_sessions_ended", tenant=slug) == 1
    assert _value(
        samples, "indorch_recent_session_duration_seconds", tenant=slug, quantile="0.95"
    ) == pytest.approx(0.0, abs=1.0)
    labels = {"tenant": slug, "agent": agent.id}
    assert _value(samples, "indorch_agent_capacity", **labels) == 4
    assert _value(samples, "indorch_agent_active_sessions", **labels) == 0
    assert _value(samples, "indorch_agent_load_ratio", **labels) == 0
    assert _value(samples, "indorch_agent_breaker_state", **labels, state="CLOSED") == 1
    assert _value(samples, "indorch_agent_breaker_state", **labels, state="OPEN") == 0
    assert _value(samples, "indorch_agent_status", **labels, status="ACTIVE") == 1
    whoami = {"method": "GET", "route": "/api/v1/whoami", "status": "200"}
    assert _value(samples, "indorch_api_request_duration_seconds_count", **whoami) == 3
    by_template = {"method": "GET", "route": "/api/v1/sessions/{session_id}/events"}
    assert _value(
        samples, "indorch_api_request_duration_seconds_count", **by_template, status="404"
    )
    assert "IND-nope" not in answer.text  # ids never become labels
    for secret in tenant.keys.values():
        assert secret not in answer.text
    assert "127.0.0.1:4096" not in answer.text


def test_metrics_with_the_database_down_still_answer_and_say_so() -> None:
    database = Database(DEAD_DATABASE)
    wiring = Services(database, ServiceFactory(database), None)
    try:
        with TestClient(create_app(wiring)) as client:
            answer = client.get("/metrics")
    finally:
        wiring.close()
    assert answer.status_code == 200
    assert _value(_samples(answer.text), "indorch_fleet_snapshot_ok") == 0
    assert "pw-never-shown" not in answer.text


def test_requests_are_labelled_without_building_the_openapi_document(
    client: TestClient, tenant_a: ApiTenant
) -> None:
    """The latency's route labels come from the routers (`api.app.route_templates`): building
    the OpenAPI document costs each new app ~0.3 CPU-s at its first request."""
    assert client.get("/api/v1/whoami", headers=tenant_a.headers()).status_code == 200
    assert client.app.openapi_schema is None  # type: ignore[attr-defined]
    assert client.get("/openapi.json").status_code == 200  # built when asked for
    assert client.app.openapi_schema is not None  # type: ignore[attr-defined]
