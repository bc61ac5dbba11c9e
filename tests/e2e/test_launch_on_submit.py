"""Launch on submit through a real Dagster webserver: `indorch session submit` launches the tenant's
wave itself (`services.wave_trigger`), where before it waited for the dispatch sensor's tick.

A real `dagster-webserver` and `dagster-daemon run` on a fresh DAGSTER_HOME made from the dev
`dagster_instance/dagster.yaml` (the run queue, the run worker), a real OpenCode server and the
scripted model, a fresh SQLite application database set up with `indorch`. The dispatch sensor
is stopped (through the webserver) before the daemon starts, so only the trigger can launch a
wave.

Contract: the CLI's submit, with `INDORCH_DAGSTER_WEBSERVER_URL` naming the webserver, makes
exactly one `session_wave` run, tagged as launched on submit, in the tenant's partition and with
the tenant tag (the queue's per-tenant limit applies), which the webserver shows live; a second
submit while the wave lives makes no second run; that one run supervises both sessions to
COMPLETED.
No process started here is left running.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pytest

from domain.caller import Caller
from domain.session import SessionStatus
from indorch.demo.processes import Child
from indorch.demo.watchdog import terminate_leftovers
from resources.dagster_webserver import DagsterWebserver
from resources.database import Database
from resources.settings import (
    DAGSTER_WEBSERVER_URL_VAR,
    PROJECT_ROOT,
)
from services.session_service import SessionService
from services.wave_trigger import LAUNCHED_BY_TAG, LAUNCHED_ON_SUBMIT
from services.waves import JOB_NAME, PARTITION_TAG, TENANT_TAG
from standins.opencode_server import OpenCodeServer
from tests.e2e.test_job_launch import (
    DAEMON_STOP_SECONDS,
    POLL_SECONDS,
    DevWorld,
    run_ended,
    run_state,
    sessions_state,
    start_dagster,
    wait_until,
)
from tests.integration.cli.support import ok
from tests.integration.deploy.host import free_port, wait_for

pytestmark = [pytest.mark.opencode, pytest.mark.slow, pytest.mark.timeout(480)]
TENANT = "acme"
PROMPT = '[script:write path=x.md content="hi" reply="Done."] Write x.md.'
DAGSTER_TEMPLATE = PROJECT_ROOT / "dagster_instance" / "dagster.yaml"
RUN_TIMEOUT_SECONDS = 180


@contextmanager
def webserver_and_daemon(env: dict[str, str], port: int, logs: Path) -> Iterator[Child]:
    """`dagster-webserver` on 127.0.0.1:`port`, then, once it answered and the dispatch sensor
    (on by default) is stopped through it, `dagster-daemon run`: only the trigger may launch a
    wave, so the sensor is stopped before the daemon's first tick. Yields the daemon; both are
    stopped together on the way out, each as `dagster_process` stops it."""
    children: list[Child] = []
    try:
        args = ["-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)]
        children.append(start_dagster("dagster-webserver", args, env, logs / "webserver.log"))
        url = f"http://127.0.0.1:{port}"
        wait_for("the webserver", lambda: _answers(f"{url}/server_info"), every=POLL_SECONDS)
        stopping = DagsterWebserver(url, timeout_seconds=60)
        try:  # as the UI's toggle does: no second load of the code location
            stopping.stop_sensor("dispatch_sensor")
        finally:
            stopping.close()
        daemon = start_dagster(
            "dagster-daemon", ["run", "-w", "workspace.yaml"], env, logs / "daemon.log"
        )
        children.append(daemon)
        yield daemon
    finally:
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(lambda child: child.stop(DAEMON_STOP_SECONDS), children))


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def submitted_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    return list(
        instance.get_runs(
            filters=dg.RunsFilter(
                job_name=JOB_NAME, tags={LAUNCHED_BY_TAG: LAUNCHED_ON_SUBMIT, TENANT_TAG: TENANT}
            )
        )
    )


def test_a_submit_launches_its_tenants_wave_through_the_webserver(
    opencode_server: OpenCodeServer, tmp_path: Path
) -> None:
    world = DevWorld.made(tmp_path, opencode_server, "launch-on-submit")
    database_url, marker, port = world.database_url, world.marker, free_port()
    env = {**world.env, "DAGSTER_HOME": str(world.dagster_home)}
    cli = world.cli
    submit = ("session", "submit", "--tenant", TENANT, "--prompt", PROMPT)
    triggering = {**cli, DAGSTER_WEBSERVER_URL_VAR: f"http://127.0.0.1:{port}"}

    database = Database(database_url)
    service = SessionService(database)
    try:
        with (
            dg.DagsterInstance.from_config(str(world.dagster_home)) as instance,
            webserver_and_daemon(env, port, tmp_path) as daemon,
        ):
            ok(database_url, *submit, env=triggering)
            [run] = submitted_runs(instance)
            assert run.tags[TENANT_TAG] == TENANT
            assert run.tags[PARTITION_TAG] == TENANT
            webserver = DagsterWebserver(triggering[DAGSTER_WEBSERVER_URL_VAR])
            assert webserver.has_live_run(JOB_NAME, {TENANT_TAG: TENANT})
            # A second submit while the wave lives (it lingers 10 s after its last
            # session): taken on by that wave, no second run.
            ok(database_url, *submit, env=triggering)
            wait_until(
                lambda: run_ended(instance, run.run_id),
                f"run {run.run_id} to end",
                daemon,
                RUN_TIMEOUT_SECONDS,
                lambda: sessions_state(service) + "\n" + run_state(instance, run.run_id),
            )
            assert len(submitted_runs(instance)) == 1
            assert not webserver.has_live_run(JOB_NAME, {TENANT_TAG: TENANT})
            sessions = service.list(Caller.operator(), TENANT)
            ended = instance.get_run_by_id(run.run_id)
            logs = " ".join(entry.message or "" for entry in instance.all_logs(run.run_id))
    finally:
        left = terminate_leftovers(marker)
        database.dispose()
    assert left == [], f"processes left running: {left}"
    assert ended is not None and ended.status is dg.DagsterRunStatus.SUCCESS
    assert [s.status for s in sessions] == [SessionStatus.COMPLETED] * 2, sessions_state(service)
    for session in sessions:  # both supervised by the run the submit launched
        assert session.id in logs, logs[-2000:]
