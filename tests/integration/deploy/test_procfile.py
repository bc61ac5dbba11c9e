"""deploy/Procfile's processes, started as its lines say, on the real PostgreSQL and Redis with
the instance of deploy/dagster.yaml: the gRPC code server serves the code location that
deploy/workspace.yaml names, the daemon (loading the workspace from that server) ticks the
sensors into Dagster's PostgreSQL storage, the webserver shows the location loaded, and the API
answers."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import httpx
import pytest
from sqlalchemy import create_engine, text

from instance_plugins.dagster_internals import DagsterGrpcClient
from tests.integration.deploy.host import (
    BIN,
    ProductionHost,
    procfile,
    production_environment,
    wait_for,
)
from tests.integration.deploy.support import ROOT

# Polls of cheap local reads (a gRPC ping, one SQL count, an HTTP answer): the test goes on as
# soon as what it waits for is there.
PROBE_POLL_SECONDS = 0.25
LOCATIONS = """
{ workspaceOrError { ... on Workspace { locationEntries {
    name locationOrLoadError { __typename } } } } }
"""


@pytest.fixture
def processes(
    tmp_path: Path, fresh_postgres_url: str, migrated_postgres_url: str, redis_url: str
) -> Iterator[ProductionHost]:
    environment = production_environment(
        tmp_path,
        dagster_postgres_url=fresh_postgres_url,
        database_url=migrated_postgres_url,
        redis_url=redis_url,
    )
    with ProductionHost(environment, tmp_path / "logs") as host:
        host.start("code", "daemon", "webserver", "api")
        yield host


def test_the_procfile_lists_every_production_process() -> None:
    assert set(procfile()) == {"code", "daemon", "webserver", "api"}
    for name in ("daemon", "webserver"):
        assert "-w deploy/workspace.yaml" in procfile()[name]
    assert shlex.split(procfile()["api"])[:3] == ["indorch", "api", "serve"]


@pytest.mark.timeout(600)  # three processes start on a shared machine
def test_the_processes_run_together_on_the_production_instance(
    processes: ProductionHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    host, env = processes, processes.environment
    last_listing: list[subprocess.CompletedProcess[str]] = []

    def explain() -> str:
        listing = ""
        if last_listing:
            answer = last_listing[-1]
            listing = (
                f"last `dagster sensor list`: exit {answer.returncode}\n"
                f"{answer.stdout[-2000:]}{answer.stderr[-2000:]}\n"
            )
        return listing + host.tails()

    def code_location_served() -> bool:
        listed = subprocess.run(
            [str(BIN / "dagster"), "sensor", "list", "-w", "deploy/workspace.yaml", "--name"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        last_listing[:] = [listed]
        return listed.returncode == 0 and "dispatch_sensor" in listed.stdout

    # `dagster sensor list` is a new interpreter importing Dagster (seconds of CPU): it runs once
    # the code server answers a ping (its code loaded), a cheap gRPC call polled often.
    code_server = DagsterGrpcClient(
        host=env["DAGSTER_CODE_SERVER_HOST"], port=int(env["DAGSTER_CODE_SERVER_PORT"])
    )
    wait_for(
        "the gRPC code server's answer to a ping",
        lambda: bool(code_server.ping("ready")),
        every=PROBE_POLL_SECONDS,
        explain=explain,
    )
    wait_for("the code location on the gRPC code server", code_location_served, explain=explain)

    dagster_db = create_engine(
        env["DAGSTER_PG_URL"].replace("postgresql://", "postgresql+psycopg://", 1)
    )
    try:

        def sensors_ticked() -> bool:
            with dagster_db.connect() as connection:
                return connection.execute(text("SELECT count(*) FROM job_ticks")).scalar_one() > 0

        wait_for(
            "a sensor tick by the daemon in Dagster's PostgreSQL",
            sensors_ticked,
            every=PROBE_POLL_SECONDS,
            explain=explain,
        )
    finally:
        dagster_db.dispose()

    api = f"http://127.0.0.1:{env['INDORCH_API_PORT']}/health/live"
    wait_for(
        "the API's health answer",
        lambda: httpx.get(api, timeout=5).status_code == 200,
        every=PROBE_POLL_SECONDS,
        explain=host.tails,
    )

    webserver = f"http://127.0.0.1:{env['DAGSTER_WEBSERVER_PORT']}/graphql"

    def location_loaded_in_the_webserver() -> bool:
        answer = httpx.post(webserver, json={"query": LOCATIONS}, timeout=10).json()
        entries = answer["data"]["workspaceOrError"]["locationEntries"]
        return [
            (entry["name"], entry["locationOrLoadError"]["__typename"]) for entry in entries
        ] == [("industrial_orchestrator", "RepositoryLocation")]

    wait_for(
        "the code location in the webserver",
        location_loaded_in_the_webserver,
        every=PROBE_POLL_SECONDS,
        explain=explain,
    )

    monkeypatch.setenv("DAGSTER_PG_URL", env["DAGSTER_PG_URL"])
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        kinds = {heartbeat for heartbeat in instance.get_daemon_heartbeats()}
    assert {"SENSOR", "SCHEDULER", "QUEUED_RUN_COORDINATOR"} <= kinds
