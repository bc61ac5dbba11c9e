"""Run launcher that hands runs to the instance's run worker (`instance_plugins.run_worker.worker`).

Configured in the embedded default's dagster.yaml. Production spreads runs over a cluster with
its own launcher (ARCHITECTURE section 7); on one machine this one saves every run the ~120 MB
and ~2 CPU-seconds of a fresh process.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from dagster import DagsterRun, DagsterRunStatus, Field, Float, serialize_value

from instance_plugins.dagster_internals import (
    CheckRunHealthResult,
    ConfigurableClass,
    ConfigurableClassData,
    LaunchRunContext,
    RunLauncher,
    UserConfigSchema,
    WorkerStatus,
)
from instance_plugins.run_worker.worker import (
    DEFAULT_POLL_SECONDS,
    WORKER_LOG,
    WORKER_MODULE,
    WORKER_PID_TAG,
    is_served,
    nudge,
    nudge_worker,
    worker_alive,
)

WORKER_START_SECONDS = 60.0


class RunWorkerLauncher(RunLauncher, ConfigurableClass):
    """Leaves the run STARTING for the run worker, starting one if none serves the instance."""

    def __init__(
        self,
        poll_seconds: float = DEFAULT_POLL_SECONDS,
        idle_exit_seconds: float = 60.0,
        inst_data: ConfigurableClassData | None = None,
    ) -> None:
        self._poll_seconds = poll_seconds
        self._idle_exit_seconds = idle_exit_seconds
        self._inst_data = inst_data
        self._started: list[subprocess.Popen[bytes]] = []
        super().__init__()

    @property
    def inst_data(self) -> ConfigurableClassData | None:
        return self._inst_data

    @classmethod
    def config_type(cls) -> UserConfigSchema:
        return {
            "poll_seconds": Field(Float, is_required=False),
            "idle_exit_seconds": Field(Float, is_required=False),
        }

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: dict[str, Any]
    ) -> RunWorkerLauncher:
        return cls(inst_data=inst_data, **config_value)

    @property
    def directory(self) -> Path:
        return Path(self._instance.root_directory) / "run_worker"

    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        if run.job_code_origin is None:
            raise ValueError(f"run {run.run_id} has no code origin: the run worker cannot load it")
        self._instance.report_engine_event("Handed to the run worker.", run, cls=self.__class__)
        self.ensure_worker()

    def ensure_worker(self) -> None:
        """Start a worker unless one serves the instance; wait until one does (it serves before
        its imports, so the next launches are not held up by its start)."""
        self._reap()
        if is_served(self.directory):
            nudge(self.directory)  # take the run now, not at the next poll
            return
        log_file = open(self.directory / WORKER_LOG, "ab")  # noqa: SIM115 - handed to the child
        with log_file:
            worker = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    WORKER_MODULE,
                    "--directory",
                    str(self.directory),
                    "--poll-seconds",
                    str(self._poll_seconds),
                    "--idle-exit-seconds",
                    str(self._idle_exit_seconds),
                ],
                stdin=subprocess.PIPE,
                stdout=log_file,
                stderr=log_file,
            )
        self._started.append(worker)
        assert worker.stdin is not None
        # The instance's ref on stdin, not in argv: its config may hold credentials.
        worker.stdin.write(serialize_value(self._instance.get_ref()).encode())
        worker.stdin.close()
        deadline = time.monotonic() + WORKER_START_SECONDS
        while time.monotonic() < deadline:
            if is_served(self.directory):
                return
            if worker.poll() is not None:
                if is_served(self.directory):
                    return  # another worker won the race to serve
                raise RuntimeError(
                    f"the run worker exited with {worker.returncode} before serving; "
                    f"see {self.directory / WORKER_LOG}"
                )
            time.sleep(0.05)
        raise RuntimeError(f"the run worker did not start within {WORKER_START_SECONDS:g} s")

    def _reap(self) -> None:
        self._started = [worker for worker in self._started if worker.poll() is None]

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            return False
        self._instance.report_run_canceling(run)
        owner = run.tags.get(WORKER_PID_TAG)
        if owner is None and run.status in (DagsterRunStatus.STARTING, DagsterRunStatus.QUEUED):
            # Not taken by a worker yet: nothing runs, so it is canceled here.
            self._instance.report_run_canceled(run, message="Canceled before it started.")
            return True
        if owner is None or not worker_alive(int(owner)):
            self._instance.report_engine_event(
                "The run worker executing this run is gone; nothing to interrupt.",
                run,
                cls=self.__class__,
            )
            return False
        nudge_worker(int(owner))  # it sees CANCELING now, not at its next poll
        return True

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        owner = run.tags.get(WORKER_PID_TAG)
        if owner is None:
            return CheckRunHealthResult(WorkerStatus.NOT_FOUND, "no run worker has taken the run")
        if worker_alive(int(owner)):
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        return CheckRunHealthResult(WorkerStatus.FAILED, f"run worker (pid {owner}) is gone")

    def dispose(self) -> None:
        self._reap()
