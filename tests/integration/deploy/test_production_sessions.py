"""Sessions end to end on one production host: deploy/Procfile's code server, daemon, webserver
and API as separate processes on the real PostgreSQL (a fresh Dagster database, a migrated
application database) and Redis, configured from deploy/. Two tenants (made with the operator's
CLI, as is their first ADMIN key) enable a managed runtime each through the API (started, then
stopped: enabled, not running), and submit sessions through the API; the daemon's runtime
sensor starts each tenant's sandboxed OpenCode server on that work, the dispatch sensor sends
the sessions to it, and every session is read COMPLETED through the API. A real Prometheus
scrapes the API's /metrics meanwhile: its queries see the sessions per tenant, and every panel
of deploy/grafana/'s dashboard reads series that exist."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text

from api.metrics import __doc__ as METRICS_DOC
from standins.opencode_config import provider_config
from tests.integration.cli.support import indorch
from tests.integration.deploy.host import (
    ProductionHost,
    production_environment,
    wait_for,
)
from tests.integration.deploy.prometheus import Prometheus, finite, prometheus_binary
from tests.integration.deploy.support import DEPLOY, ROOT
from tests.integration.runtime.conftest import (
    remove_tenant_users,
    require_sandbox,
    unique_tenant,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

DASHBOARD = DEPLOY / "grafana" / "industrial-orchestrator.json"
# What Grafana puts in place of the dashboard's variables: every tenant, a rate window.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$tenant": ".*"}
SESSIONS_PER_TENANT = 3
COMPLETED_WITHIN_SECONDS = 480
CLI_TIMEOUT_SECONDS = 120
# Polls of cheap local reads (a health answer, one Prometheus query): the test goes on as soon as
# what it waits for is there.
PROBE_POLL_SECONDS = 0.25
# The sessions' poll: one page of sessions per tenant through the API.
COMPLETED_POLL_SECONDS = 1


def dashboard_targets() -> list[tuple[str, str]]:
    """(panel title, PromQL expression) of every target of every panel, rows' panels too."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    nested = [inner for panel in panels for inner in panel.get("panels", [])]
    return [
        (panel["title"], target["expr"])
        for panel in [*panels, *nested]
        for target in panel.get("targets", [])
    ]


def as_prometheus_reads(expression: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expression = expression.replace(variable, value)
    return expression


def test_the_dashboard_names_only_series_the_api_exposes() -> None:
    targets = dashboard_targets()
    assert targets, "no panel targets in the dashboard"
    documented = set(re.findall(r"indorch_[a-z_]+", METRICS_DOC or ""))
    for title, expression in targets:
        named = set(re.findall(r"indorch_[a-z_]+", expression))
        # Histograms and counters are read through their _bucket / _count / _total samples.
        bases = {re.sub(r"_(bucket|count|sum)$", "", name) for name in named}
        assert bases and bases <= documented, (title, expression, bases - documented)
    variable = json.loads(DASHBOARD.read_text())["templating"]["list"][0]
    assert variable["name"] == "tenant" and variable["allValue"] == ".*"


@dataclass
class RuntimeTenants:
    slugs: list[str]
    root: Path  # the runtimes' root


@pytest.fixture
def runtime_tenants() -> Iterator[RuntimeTenants]:
    """Two fresh tenant slugs and a runtimes' root outside pytest's private temporary directory
    (the tenant users pass through it). Afterwards their runtimes' processes are killed and
    their OS users (only theirs: other tests' stay) removed, then the root."""
    require_sandbox()
    root = Path(tempfile.mkdtemp(prefix="indorch-runtimes-"))
    os.chmod(root, 0o711)
    made = RuntimeTenants([unique_tenant("mp"), unique_tenant("mp")], root)
    try:
        yield made
    finally:
        remove_tenant_users(made.slugs)
        shutil.rmtree(root, ignore_errors=True)


def operator_cli(environment: dict[str, str], *args: str) -> str:
    """`indorch ...` as the operator on the host's environment; its stdout. A child forked from
    the test process (its own process and environment, without a new interpreter's start-up,
    ~1 CPU-s a command, while the host's servers start on the same CPUs)."""
    with contextlib.chdir(ROOT):  # where the operator runs it (the forked child's directory)
        done = indorch(
            environment["DATABASE_URL"], *args, env=environment, timeout=CLI_TIMEOUT_SECONDS
        )
    assert done.returncode == 0, f"indorch {' '.join(args)}: {done.stdout}\n{done.stderr}"
    return done.stdout


def bootstrap_tenant(environment: dict[str, str], slug: str) -> str:
    """The README's way: the operator creates the tenant and its first ADMIN key (CLI)."""
    operator_cli(environment, "tenant", "create", slug)
    created = operator_cli(
        environment,
        "apikey",
        "create",
        "--tenant",
        slug,
        "--name",
        "admin",
        "--role",
        "admin",
        "--json",
    )
    return json.loads(created)["key"]


def answered(response: httpx.Response, status: int) -> Any:
    assert response.status_code == status, (
        f"{response.request.method} {response.request.url.path}: "
        f"{response.status_code} {response.text}"
    )
    return response.json()


def test_sessions_through_the_api_on_two_managed_runtimes_seen_by_prometheus(
    tmp_path: Path,
    fresh_postgres_url: str,
    migrated_postgres_url: str,
    redis_url: str,
    runtime_tenants: RuntimeTenants,
    scripted_model_url: str,
    opencode_binary: Path,
) -> None:
    prometheus_bin = prometheus_binary()
    tenants, runtime_root = runtime_tenants.slugs, runtime_tenants.root
    runtime_config = tmp_path / "runtime-opencode.json"
    runtime_config.write_text(json.dumps(provider_config(scripted_model_url)))
    environment = production_environment(
        tmp_path,
        dagster_postgres_url=fresh_postgres_url,
        database_url=migrated_postgres_url,
        redis_url=redis_url,
        INDORCH_SECRET_KEY=Fernet.generate_key().decode(),
        INDORCH_RUNTIME_ROOT=str(runtime_root),
        INDORCH_RUNTIME_OPENCODE_CONFIG=str(runtime_config),
        INDORCH_OPENCODE_BIN=str(opencode_binary),
        INDORCH_WORKSPACES_DIR=str(tmp_path / "workspaces"),
        PYTHONUNBUFFERED="1",
    )
    environment.pop("INDORCH_RUNTIME_ALLOW_UNSANDBOXED", None)
    api = f"http://127.0.0.1:{environment['INDORCH_API_PORT']}"
    with ProductionHost(environment, tmp_path / "logs") as host:
        host.start("api", "code", "daemon", "webserver")
        prometheus = Prometheus(host, tmp_path / "prometheus")
        prometheus.launch(prometheus_bin, "indorch-api", [api.removeprefix("http://")])
        # The operator makes the tenants while the servers start (one after the other: each
        # command is a child forked from this process).
        keys = {slug: bootstrap_tenant(environment, slug) for slug in tenants}
        prometheus.wait_ready()
        wait_for(
            "the API's health answer",
            lambda: httpx.get(f"{api}/health/live", timeout=5).status_code == 200,
            every=PROBE_POLL_SECONDS,
            explain=host.tails,
        )
        clients = {
            slug: httpx.Client(
                base_url=f"{api}/api/v1",
                headers={"Authorization": f"Bearer {key}", "X-Tenant-ID": slug},
                timeout=120,
            )
            for slug, key in keys.items()
        }
        try:
            _run_sessions(host, prometheus, clients, environment)
        finally:
            for client in clients.values():
                client.close()


def _run_sessions(
    host: ProductionHost,
    prometheus: Prometheus,
    admins: dict[str, httpx.Client],
    environment: dict[str, str],
) -> None:
    # The ADMIN keys work the admin routes: a MEMBER key per tenant, which submits the sessions.
    members = {}
    for slug, admin in admins.items():
        created = answered(admin.post("/api-keys", json={"name": "ci", "role": "MEMBER"}), 201)
        members[slug] = httpx.Client(
            base_url=admin.base_url,
            headers={"Authorization": f"Bearer {created['key']}", "X-Tenant-ID": slug},
            timeout=60,
        )
        assert answered(members[slug].get("/whoami"), 200)["role"] == "MEMBER"
    try:
        _sessions_on_runtimes(host, prometheus, admins, members, environment)
    finally:
        for client in members.values():
            client.close()


def _sessions_on_runtimes(
    host: ProductionHost,
    prometheus: Prometheus,
    admins: dict[str, httpx.Client],
    members: dict[str, httpx.Client],
    environment: dict[str, str],
) -> None:
    tenants = list(admins)

    # Enable each tenant's managed runtime (as `indorch runtime start` once): started by the
    # API here, then stopped: from now on the runtime sensor starts it when there is work.
    with ThreadPoolExecutor(max_workers=len(tenants)) as pool:
        started = dict(
            zip(
                tenants, pool.map(lambda s: admins[s].post("/runtimes/start"), tenants), strict=True
            )
        )
    first_agent = {}
    for slug, response in started.items():
        runtime = answered(response, 200)
        assert (runtime["status"], runtime["sandboxed"]) == ("LIVE", True), runtime
        first_agent[slug] = runtime["agent_id"]
        stopped = answered(admins[slug].post("/runtimes/stop"), 200)
        assert stopped["status"] == "STOPPED", stopped

    submitted = {
        slug: [
            answered(
                members[slug].post(
                    "/sessions",
                    json={
                        "title": f"Session {n}",
                        "prompt": f'[script:text reply="Session {n} of {slug} done."]',
                        "tags": ["multi-process"],
                    },
                ),
                201,
            )["id"]
            for n in range(SESSIONS_PER_TENANT)
        ]
        for slug in tenants
    }

    def sessions_of(slug: str) -> dict[str, dict[str, Any]]:
        page = answered(members[slug].get("/sessions", params={"limit": 200}), 200)
        return {session["id"]: session for session in page["items"]}

    def progress() -> str:
        lines = []
        for slug in tenants:
            for session in sessions_of(slug).values():
                lines.append(
                    f"{slug} {session['id']} {session['status']} {session['status_reason']!r}"
                    f" error={session.get('error')!r}"
                    f" attempts={session['metadata'].get('attempts')}"
                )
                if session["status"] != "COMPLETED":  # its last events say where it stands
                    lines += last_events(environment, slug, session["id"])
            lines.append(f"{slug} runtimes: {answered(admins[slug].get('/runtimes'), 200)}")
        return "\n".join([*lines, host.tails(), run_logs(Path(environment["DAGSTER_HOME"]))])

    def all_completed() -> bool:
        return all(
            [sessions_of(slug)[i]["status"] for i in ids] == ["COMPLETED"] * len(ids)
            for slug, ids in submitted.items()
        )

    wait_for(
        f"{SESSIONS_PER_TENANT} sessions per tenant COMPLETED (read through the API)",
        all_completed,
        within=COMPLETED_WITHIN_SECONDS,
        every=COMPLETED_POLL_SECONDS,
        explain=progress,
    )

    # Each ran on its tenant's runtime as started again by the daemon's runtime sensor: a new
    # agent per start, and the sensor's ticks (in Dagster's PostgreSQL) say it started them.
    for slug in tenants:
        (runtime,) = answered(admins[slug].get("/runtimes"), 200)
        assert (runtime["status"], runtime["sandboxed"]) == ("LIVE", True), runtime
        assert runtime["agent_id"] not in (None, first_agent[slug]), runtime
        agents = {sessions_of(slug)[i]["agent_id"] for i in submitted[slug]}
        assert agents == {runtime["agent_id"]}, (slug, agents, runtime)
    started_by_sensor = _runtime_sensor_starts(environment["DAGSTER_PG_URL"], tenants)
    assert started_by_sensor == set(tenants), started_by_sensor

    # Prometheus, scraping /metrics every second, sees them: COMPLETED per tenant.
    completed = 'sum by (tenant) (indorch_sessions{status="COMPLETED"})'
    expected = {slug: float(SESSIONS_PER_TENANT) for slug in tenants}
    wait_for(
        "Prometheus's query over the scrape seeing every tenant's COMPLETED sessions",
        lambda: prometheus.values(completed, by="tenant") == expected,
        within=60,
        every=PROBE_POLL_SECONDS,
        explain=lambda: (
            f"{completed} = {prometheus.values(completed, by='tenant')}, want {expected}; "
            f"targets: {prometheus.targets_health()}\n{host.tails()}"
        ),
    )
    queued = prometheus.values("indorch_queue_depth", by="tenant")
    assert queued == {slug: 0.0 for slug in tenants}, queued
    for usage in ("sum by (tenant) (indorch_tokens_total)", "indorch_cost_usd_total"):
        figures = prometheus.values(usage, by="tenant")
        assert set(figures) == set(tenants) and min(figures.values()) > 0, (usage, figures)

    # Every panel of the dashboard reads series Prometheus holds.
    empty = []
    for title, expression in dashboard_targets():
        series = prometheus.query(as_prometheus_reads(expression))
        if not finite(series):
            empty.append(f"{title}: {expression} -> {series}")
    assert not empty, "dashboard targets without data:\n" + "\n".join(empty)
    tenant_values = httpx.get(
        f"{prometheus.url}/api/v1/label/tenant/values",
        params={"match[]": "indorch_sessions"},
        timeout=10,
    ).json()["data"]
    assert set(tenants) <= set(tenant_values), tenant_values  # the $tenant variable's choices


def last_events(environment: dict[str, str], tenant: str, session_id: str) -> list[str]:
    """A session's last events (`indorch session events --json`), one line each."""
    try:
        events = json.loads(
            operator_cli(environment, "session", "events", "--tenant", tenant, "--json", session_id)
        )
    except Exception as error:  # the failure message must still come out
        return [f"  (its events could not be read: {error!r})"]
    return [
        f"  {e.get('seq')} {e.get('event_type')} {e.get('new_status') or ''}"
        f" {e.get('reason') or ''} {json.dumps(e.get('data'))[:300]}"
        for e in events[-8:]
    ]


def run_logs(dagster_home: Path, lines: int = 15) -> str:
    """The end of every run's captured output (the waves' own log lines)."""
    parts = []
    for log in sorted(dagster_home.glob("storage/*/compute_logs/*.err")):
        text = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
        parts.append(f"--- run {log.parts[-3]}:\n" + "\n".join(text[-lines:]))
    return "\n".join(parts)


def _runtime_sensor_starts(dagster_pg_url: str, tenants: list[str]) -> set[str]:
    """The tenants a tick of the runtime sensor reports having started (Dagster's storage)."""
    engine = create_engine(dagster_pg_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as connection:
            bodies = connection.execute(text("SELECT tick_body FROM job_ticks")).scalars().all()
    finally:
        engine.dispose()
    started = {
        slug
        for body in bodies
        for listed in re.findall(r"started ([a-z0-9, -]+)", body)
        for slug in listed.split(", ")
    }
    return started & set(tenants)
