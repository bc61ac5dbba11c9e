"""Launching wave runs as the daemon does: each RunRequest becomes a run on a DagsterInstance and
is started by its run launcher, one of two:
- `process`: Dagster's DefaultRunLauncher, a subprocess per run spawned by the code location's
  gRPC server (`session_wave` runs its op in that process);
- `worker`: the embedded default's `RunWorkerLauncher` (dagster_instance/dagster.yaml): the run
  executes in a thread of the run worker, one process started on demand by the first launch.
Either way the compute logs are captured as the project's instance captures them.
`instance.submit_run` returns once the run is handed over, so runs are launched one after
another, as the daemon's default run queue does.

The run is created exactly as Dagster's sensor daemon creates a sensor's run
(`dagster._daemon.sensor._create_sensor_run`: the remote job, its execution plan snapshot, the
request's run config and tags plus the run key) and handed to `instance.submit_run`. The bench
plays the run queue: at most `max_runs` runs in progress at once (production's
`max_concurrent_runs`), the rest wait in order; the per-tenant tag limit is not applied.
"""

from __future__ import annotations

import threading
from collections import deque
from pathlib import Path

import dagster as dg
from dagster import DagsterRunStatus, RunsFilter

from instance_plugins.dagster_internals import (
    RUN_KEY_TAG,
    JobSubsetSelector,
    ModuleTarget,
    WorkspaceProcessContext,
)
from services.waves import JOB_NAME, WAVE_TAG

LOCATION_NAME = "bench"
CODE_LOCATION_MODULE = "bench.code_location"
ENDED = frozenset({DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED})
LIVE = [s for s in DagsterRunStatus if s not in ENDED and s is not DagsterRunStatus.CANCELING]

INSTANCE_YAML = """\
# The bench's throwaway Dagster instance: SQLite storage under this directory, and runs started
# as soon as they are submitted (the bench itself bounds how many are in progress, as the run
# queue would).
telemetry:
  enabled: false
run_coordinator:
  module: dagster.core.run_coordinator
  class: DefaultRunCoordinator
"""

LAUNCHER_YAML = {
    "process": """\
run_launcher:
  module: dagster
  class: DefaultRunLauncher
""",
    # As in dagster_instance/dagster.yaml.
    "worker": """\
run_launcher:
  module: instance_plugins.run_worker.launcher
  class: RunWorkerLauncher
  config:
    idle_exit_seconds: 60
""",
}

# Compute logs captured as the project's instance captures them (dagster_instance/dagster.yaml).
COMPUTE_LOGS_YAML = """\
compute_logs:
  module: instance_plugins.compute_logs
  class: FileComputeLogManager
"""


# Runs executed in threads of one process (the in-process mode) cannot capture compute logs:
# the capture redirects the process's stdout/stderr to per-run files, so concurrent runs would
# fight over them. A long-lived worker would not capture that way either.
NO_COMPUTE_LOGS_YAML = """\
compute_logs:
  module: dagster.core.storage.noop_compute_log_manager
  class: NoOpComputeLogManager
"""


def write_instance_yaml(
    dagster_home: Path, launcher: str = "process", capture_compute_logs: bool = True
) -> None:
    dagster_home.mkdir(parents=True, exist_ok=True)
    text = INSTANCE_YAML + LAUNCHER_YAML[launcher]
    text += COMPUTE_LOGS_YAML if capture_compute_logs else NO_COMPUTE_LOGS_YAML
    (dagster_home / "dagster.yaml").write_text(text)


class RunLauncher:
    """Creates and submits runs for RunRequests; at most `max_runs` in progress at once."""

    def __init__(self, instance: dg.DagsterInstance, project_root: Path, max_runs: int) -> None:
        self._instance = instance
        self._max_runs = max_runs
        self._context = WorkspaceProcessContext(
            instance,
            ModuleTarget(
                module_name=CODE_LOCATION_MODULE,
                attribute=None,
                working_directory=str(project_root),
                location_name=LOCATION_NAME,
            ),
        )
        location = self._context.create_request_context().get_code_location(LOCATION_NAME)
        self._repository = next(iter(location.get_repositories()))
        self._waiting: deque[dg.RunRequest] = deque()
        self._active: set[str] = set()
        self.launched: list[str] = []
        self.failed: list[str] = []

    def enqueue(self, requests: list[dg.RunRequest]) -> None:
        self._waiting.extend(requests)

    @property
    def idle(self) -> bool:
        return not self._waiting and not self._active

    def poll(self) -> None:
        """Forget ended runs, then launch waiting requests into the free slots."""
        if self._active:
            ended = self._instance.get_runs(
                filters=RunsFilter(run_ids=list(self._active), statuses=list(ENDED))
            )
            for run in ended:
                self._active.discard(run.run_id)
                if run.status is not DagsterRunStatus.SUCCESS:
                    self.failed.append(run.run_id)
        while self._waiting and len(self._active) < self._max_runs:
            run_id = self._launch(self._waiting.popleft())
            self._active.add(run_id)
            self.launched.append(run_id)

    def _launch(self, request: dg.RunRequest) -> str:
        workspace = self._context.create_request_context()
        location = workspace.get_code_location(LOCATION_NAME)
        job = location.get_job(
            JobSubsetSelector(
                location_name=LOCATION_NAME,
                repository_name=self._repository,
                job_name=JOB_NAME,
                op_selection=None,
            )
        )
        plan = location.get_execution_plan(
            job,
            request.run_config,
            step_keys_to_execute=None,
            known_state=None,
            instance=self._instance,
        )
        tags = {**(job.run_tags or {}), **request.tags}
        if request.run_key:
            tags[RUN_KEY_TAG] = request.run_key
        run = self._instance.create_run(
            job_name=JOB_NAME,
            run_id=None,
            run_config=request.run_config,
            resolved_op_selection=job.resolved_op_selection,
            step_keys_to_execute=None,
            status=DagsterRunStatus.NOT_STARTED,
            op_selection=None,
            root_run_id=None,
            parent_run_id=None,
            tags=tags,
            job_snapshot=job.job_snapshot,
            execution_plan_snapshot=plan.execution_plan_snapshot,
            parent_job_snapshot=job.parent_job_snapshot,
            remote_job_origin=job.get_remote_origin(),
            job_code_origin=job.get_python_origin(),
            asset_selection=None,
            asset_check_selection=None,
            asset_graph=location.get_repository(self._repository).asset_graph,
        )
        self._instance.submit_run(run.run_id, workspace)
        return run.run_id

    def close(self) -> None:
        self._context.__exit__(None, None, None)


class SubmitLaunches:
    """The wave trigger's way in (`services.wave_trigger.WaveRuns`) for a bench without a
    webserver: what `launchRun` does there, in process. A launch hands its request to the
    bench's run queue at once (`take`, drained by the bench's loop into `RunLauncher`, as the
    daemon dequeues a run `launchRun` queued); a run is live while its request waits there or
    while the instance shows it queued, starting or running. Called from the trigger's thread.
    """

    def __init__(self, instance: dg.DagsterInstance) -> None:
        self._instance = instance
        self._lock = threading.Lock()
        self._handed: list[dg.RunRequest] = []
        self._waiting: dict[str, dict[str, str]] = {}  # wave id -> tags, until its run exists
        self.launched = 0

    def has_live_run(self, job_name: str, tags: dict[str, str]) -> bool:
        with self._lock:
            waves = [w for w, t in self._waiting.items() if tags.items() <= t.items()]
        for wave in waves:
            if not self._instance.get_runs(filters=RunsFilter(tags={WAVE_TAG: wave}), limit=1):
                return True  # still waiting in the queue
            with self._lock:
                self._waiting.pop(wave, None)
        live = RunsFilter(job_name=job_name, tags=tags, statuses=LIVE)
        return bool(self._instance.get_runs(filters=live, limit=1))

    def launch_run(self, job_name: str, run_config: dict[str, object], tags: dict[str, str]) -> str:
        assert job_name == JOB_NAME, job_name
        with self._lock:
            self._handed.append(dg.RunRequest(run_config=run_config, tags=tags))
            self._waiting[tags[WAVE_TAG]] = tags
            self.launched += 1
        return tags[WAVE_TAG]

    def take(self) -> list[dg.RunRequest]:
        with self._lock:
            handed, self._handed = self._handed, []
        return handed
