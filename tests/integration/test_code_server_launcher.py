"""The production run launcher (deploy/dagster.yaml: `CodeServerRunLauncher`, Dagster's
DefaultRunLauncher plus a worker health check) on a real gRPC code server. A run its code
server executes is RUNNING. When the code server is killed (`kill -9` of its process group: the
run goes with it) and started again on its port, the run is FAILED, so run monitoring fails it
instead of leaving it STARTED, holding its tenant's run-queue slot, for the instance's maximum
runtime (a run process killed alone is failed by its code server itself)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from instance_plugins.code_server_launcher import CodeServerRunLauncher
from instance_plugins.dagster_internals import (
    GRPC_INFO_TAG,
    DagsterGrpcClient,
    GrpcServerTarget,
    JobSubsetSelector,
    WorkerStatus,
    WorkspaceProcessContext,
    create_run_for_test,
)
from sensors.lost_starts import fail_lost_starts, lost_start_sensor
from tests.integration.deploy.host import BIN, ProductionHost, free_port, wait_for

LOCATION = "sleeping"
POLL_SECONDS = 0.1  # how often a wait looks again (the default, 1 s, is most of the wait)
INSTANCE_YAML = """\
telemetry:
  enabled: false
run_coordinator:
  module: dagster.core.run_coordinator
  class: DefaultRunCoordinator
run_launcher:
  module: instance_plugins.code_server_launcher
  class: CodeServerRunLauncher
"""


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    (tmp_path / "dagster.yaml").write_text(INSTANCE_YAML)
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        yield instance


@pytest.fixture(scope="module")
def code_server_host(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ProductionHost, int]]:
    """`dagster code-server start` of the sleeping job's location, as deploy/Procfile runs it, on
    one port for the module: its start is seconds of CPU, and the tests' runs carry their own
    instance to it. Killed at the end (how it stops is no test's subject here)."""
    home = tmp_path_factory.mktemp("code_server_home")
    (home / "dagster.yaml").write_text(INSTANCE_YAML)
    port = free_port()
    environment = {**os.environ, "DAGSTER_HOME": str(home)}
    host = ProductionHost(environment, home / "logs")
    host.commands = {
        "code": f"{BIN}/dagster code-server start -h 127.0.0.1 -p {port} "
        f"-m tests.integration.sleeping_job_location --location-name {LOCATION}"
    }
    try:
        yield host, port
    finally:
        if host.running("code"):
            host.kill("code")


@pytest.fixture
def code_server(code_server_host: tuple[ProductionHost, int]) -> tuple[ProductionHost, int]:
    """The module's code server, running: started again if a test before killed it."""
    host, port = code_server_host
    if not host.running("code"):
        host.start("code")
    return host, port


def launch_sleeping_run(instance: dg.DagsterInstance, context: WorkspaceProcessContext) -> str:
    workspace = context.create_request_context()
    location = workspace.get_code_location(LOCATION)
    repository = next(iter(location.get_repositories()))
    job = location.get_job(JobSubsetSelector(LOCATION, repository, "sleeping", None))
    plan = location.get_execution_plan(job, {}, None, None, instance=instance)
    run = instance.create_run(
        job_name="sleeping",
        run_id=None,
        run_config={},
        resolved_op_selection=None,
        step_keys_to_execute=None,
        status=dg.DagsterRunStatus.NOT_STARTED,
        op_selection=None,
        root_run_id=None,
        parent_run_id=None,
        tags={},
        job_snapshot=job.job_snapshot,
        execution_plan_snapshot=plan.execution_plan_snapshot,
        parent_job_snapshot=job.parent_job_snapshot,
        remote_job_origin=job.get_remote_origin(),
        job_code_origin=job.get_python_origin(),
        asset_selection=None,
        asset_check_selection=None,
        asset_graph=location.get_repository(repository).asset_graph,
    )
    instance.submit_run(run.run_id, workspace)
    return run.run_id


@pytest.mark.timeout(300)
def test_a_run_lost_with_its_code_server_is_reported_failed(
    instance: dg.DagsterInstance, code_server: tuple[ProductionHost, int]
) -> None:
    host, port = code_server
    launcher = instance.run_launcher
    assert isinstance(launcher, CodeServerRunLauncher)
    assert launcher.supports_check_run_worker_health
    target = GrpcServerTarget(host="127.0.0.1", port=port, socket=None, location_name=LOCATION)

    client = DagsterGrpcClient(host="127.0.0.1", port=port)
    wait_for("the code server", lambda: bool(client.ping("ready")), within=120, every=POLL_SECONDS)
    with WorkspaceProcessContext(instance, target) as context:
        run_id = launch_sleeping_run(instance, context)

    def run() -> dg.DagsterRun:
        found = instance.get_run_by_id(run_id)
        assert found is not None
        return found

    wait_for(
        "the run started",
        lambda: run().status is dg.DagsterRunStatus.STARTED,
        within=180,
        every=POLL_SECONDS,
    )
    assert launcher.check_run_worker_health(run()).status is WorkerStatus.RUNNING

    host.kill("code")  # the run goes with its code server
    down = launcher.check_run_worker_health(run())
    assert down.status is WorkerStatus.RUNNING, "a code server that does not answer tells nothing"

    host.start("code")
    wait_for(
        "the code server again", lambda: bool(client.ping("ready")), within=120, every=POLL_SECONDS
    )
    health = launcher.check_run_worker_health(run())
    assert health.status is WorkerStatus.FAILED, health.msg
    assert run().status is dg.DagsterRunStatus.STARTED  # until run monitoring fails it


def starting_run(instance: dg.DagsterInstance, port: int) -> str:
    """A run the daemon marked STARTING and handed to the code server on `port` (its tag says
    so), whose process never reported it started: killed while starting, as in the chaos suite."""
    where = {"host": "127.0.0.1", "port": port, "socket": None, "use_ssl": False}
    run = create_run_for_test(
        instance,
        job_name="sleeping",
        status=dg.DagsterRunStatus.STARTING,
        tags={GRPC_INFO_TAG: json.dumps(where)},
    )
    return run.run_id


def status_of(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRunStatus:
    run = instance.get_run_by_id(run_id)
    assert run is not None
    return run.status


@pytest.mark.timeout(300)
def test_a_run_lost_while_starting_is_failed_not_one_young_or_on_a_silent_code_server(
    instance: dg.DagsterInstance, code_server: tuple[ProductionHost, int]
) -> None:
    host, port = code_server
    client = DagsterGrpcClient(host="127.0.0.1", port=port)
    wait_for("the code server", lambda: bool(client.ping("ready")), within=120, every=POLL_SECONDS)
    lost = starting_run(instance, port)
    before_it = datetime.now(UTC) - timedelta(minutes=5)

    assert fail_lost_starts(instance, starting_before=before_it) == []  # too young to judge
    assert status_of(instance, lost) is dg.DagsterRunStatus.STARTING

    after_it = datetime.now(UTC) + timedelta(seconds=1)
    assert fail_lost_starts(instance, starting_before=after_it) == [lost]
    assert status_of(instance, lost) is dg.DagsterRunStatus.FAILURE
    failure = instance.all_logs(lost, of_type=dg.DagsterEventType.RUN_FAILURE)
    assert "lost before it started" in (failure[0].message or "")

    host.kill("code")  # a code server that does not answer tells nothing: the run stays
    unknown = starting_run(instance, port)
    later = datetime.now(UTC) + timedelta(seconds=1)
    assert fail_lost_starts(instance, starting_before=later) == []
    assert status_of(instance, unknown) is dg.DagsterRunStatus.STARTING


def test_the_sensor_leaves_a_run_that_has_just_begun_starting(
    instance: dg.DagsterInstance,
) -> None:
    run_id = starting_run(instance, free_port())  # nothing listens there: cannot tell
    result = lost_start_sensor(dg.build_sensor_context(instance=instance))
    assert isinstance(result, dg.SkipReason)
    assert status_of(instance, run_id) is dg.DagsterRunStatus.STARTING
