"""deploy/Procfile's processes, started as its lines say, on the real PostgreSQL and Redis with
the instance of deploy/dagster.yaml: the gRPC code server serves the code location that
deploy/workspace.yaml names, the daemon (loading the workspace from that server) ticks the
sensors into Dagster's PostgreSQL storage, the webserver shows the location loaded, and the API
answers."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.integration.deploy.support import DEPLOY, ROOT, dagster_home, psycopg2_url

STARTED_WITHIN_SECONDS = 180
LOCATIONS = """
{ workspaceOrError { ... on Workspace { locationEntries {
    name locationOrLoadError { __typename } } } } }
"""
BIN = Path(sys.executable).parent


def procfile() -> dict[str, str]:
    lines = (DEPLOY / "Procfile").read_text().splitlines()
    entries = [line.split(":", 1) for line in lines if line.strip() and not line.startswith("#")]
    return {name.strip(): command.strip() for name, command in entries}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + STARTED_WITHIN_SECONDS
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # not up yet
            pass
        time.sleep(1)
    raise AssertionError(f"{what} not seen within {STARTED_WITHIN_SECONDS} s")


@pytest.fixture
def environment(
    tmp_path: Path, fresh_postgres_url: str, migrated_postgres_url: str, redis_url: str
) -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "DAGSTER_HOME": str(dagster_home(tmp_path)),
        "DAGSTER_PG_URL": psycopg2_url(fresh_postgres_url),
        "DATABASE_URL": migrated_postgres_url,
        "REDIS_URL": redis_url,
        "INDORCH_STATE_DIR": str(tmp_path / "state"),
        "DAGSTER_CODE_SERVER_HOST": "127.0.0.1",
        "DAGSTER_CODE_SERVER_PORT": str(free_port()),
        "INDORCH_API_PORT": str(free_port()),
        "DAGSTER_WEBSERVER_PORT": str(free_port()),
    }


@pytest.fixture
def processes(environment: dict[str, str], tmp_path: Path) -> Iterator[dict[str, str]]:
    started: list[subprocess.Popen[bytes]] = []
    commands = procfile()
    try:
        for name in ("code", "daemon", "webserver", "api"):
            log = (tmp_path / f"{name}.log").open("wb")
            started.append(
                subprocess.Popen(
                    ["bash", "-c", f"exec {commands[name]}"],
                    cwd=ROOT,
                    env=environment,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        yield environment
    finally:
        for process in started:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in started:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def test_the_procfile_lists_every_production_process() -> None:
    assert set(procfile()) == {"code", "daemon", "webserver", "api"}
    for name in ("daemon", "webserver"):
        assert "-w deploy/workspace.yaml" in procfile()[name]
    assert shlex.split(procfile()["api"])[:3] == ["indorch", "api", "serve"]


@pytest.mark.timeout(600)  # three processes start on a shared machine
def test_the_processes_run_together_on_the_production_instance(
    processes: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = processes

    def code_location_served() -> bool:
        listed = subprocess.run(
            [str(BIN / "dagster"), "sensor", "list", "-w", "deploy/workspace.yaml", "--name"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return listed.returncode == 0 and "dispatch_sensor" in listed.stdout

    wait_for("the code location on the gRPC code server", code_location_served)

    dagster_db = create_engine(
        env["DAGSTER_PG_URL"].replace("postgresql://", "postgresql+psycopg://", 1)
    )
    try:

        def sensors_ticked() -> bool:
            with dagster_db.connect() as connection:
                return connection.execute(text("SELECT count(*) FROM job_ticks")).scalar_one() > 0

        wait_for("a sensor tick by the daemon in Dagster's PostgreSQL", sensors_ticked)
    finally:
        dagster_db.dispose()

    api = f"http://127.0.0.1:{env['INDORCH_API_PORT']}/health/live"
    wait_for("the API's health answer", lambda: httpx.get(api, timeout=5).status_code == 200)

    webserver = f"http://127.0.0.1:{env['DAGSTER_WEBSERVER_PORT']}/graphql"

    def location_loaded_in_the_webserver() -> bool:
        answer = httpx.post(webserver, json={"query": LOCATIONS}, timeout=10).json()
        entries = answer["data"]["workspaceOrError"]["locationEntries"]
        return [
            (entry["name"], entry["locationOrLoadError"]["__typename"]) for entry in entries
        ] == [("industrial_orchestrator", "RepositoryLocation")]

    wait_for("the code location in the webserver", location_loaded_in_the_webserver)

    monkeypatch.setenv("DAGSTER_PG_URL", env["DAGSTER_PG_URL"])
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        kinds = {heartbeat for heartbeat in instance.get_daemon_heartbeats()}
    assert {"SENSOR", "SCHEDULER", "QUEUED_RUN_COORDINATOR"} <= kinds
