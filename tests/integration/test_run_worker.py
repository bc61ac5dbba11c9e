"""The run worker on a real Dagster instance: runs launched through `RunWorkerLauncher` execute in
threads of one worker process, each with its own captured output; termination, a dead worker,
idle exit and changed code behave as a demanding operator expects.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster import DagsterRun, DagsterRunStatus

from instance_plugins.dagster_internals import ReconstructableRepository, WorkerStatus
from instance_plugins.run_worker.launcher import RunWorkerLauncher
from instance_plugins.run_worker.worker import (
    WORKER_MODULE,
    WORKER_PID_TAG,
    is_served,
    worker_alive,
)

pytestmark = pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs Linux /proc")

JOBS = """
import time
import dagster as dg


@dg.op(config_schema={"marker": str, "seconds": float})
def chatty(context):
    print(f"printed {context.op_config['marker']}", flush=True)
    context.log.info(f"logged {context.op_config['marker']}")
    time.sleep(context.op_config["seconds"])


@dg.job(executor_def=dg.in_process_executor)  # as the session wave
def chatty_job():
    chatty()


@dg.op
def waits(context):
    context.log.info("waiting to be terminated")
    while True:
        time.sleep(0.05)


@dg.job(executor_def=dg.in_process_executor)
def waits_job():
    waits()


@dg.repository
def jobs():
    return [chatty_job, waits_job]
"""

ENDED = (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED)


@pytest.fixture
def jobs_file(tmp_path: Path) -> Path:
    code = tmp_path / "code"
    code.mkdir()
    path = code / "worker_jobs.py"
    path.write_text(JOBS)
    return path


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    with worker_instance(tmp_path, poll_seconds=0.2) as instance:
        yield instance


@contextlib.contextmanager
def worker_instance(tmp_path: Path, poll_seconds: float) -> Iterator[dg.DagsterInstance]:
    overrides = {
        "run_launcher": {
            "module": "instance_plugins.run_worker.launcher",
            "class": "RunWorkerLauncher",
            "config": {"poll_seconds": poll_seconds, "idle_exit_seconds": 4.0},
        },
        "compute_logs": {
            "module": "instance_plugins.compute_logs",
            "class": "FileComputeLogManager",
        },
    }
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(overrides=overrides, temp_dir=str(tmp_path / "home")) as instance:
        yield instance
        for run in instance.get_runs():
            pid = run.tags.get(WORKER_PID_TAG)
            if pid and worker_alive(int(pid)):
                os.kill(int(pid), signal.SIGKILL)


def create_run(
    instance: dg.DagsterInstance, jobs_file: Path, job_name: str, run_config: dict | None = None
) -> DagsterRun:
    """A NOT_STARTED run of the job, with the code origin a run worker loads it from."""
    repository = ReconstructableRepository.for_file(
        str(jobs_file), "jobs", working_directory=str(jobs_file.parent)
    )
    recon = repository.get_reconstructable_job(job_name)
    return instance.create_run_for_job(
        job_def=recon.get_definition(),
        run_config=run_config or {},
        job_code_origin=recon.get_python_origin(),
    )


def launch(
    instance: dg.DagsterInstance, jobs_file: Path, job_name: str, run_config: dict | None = None
) -> str:
    run = create_run(instance, jobs_file, job_name, run_config)
    instance.launch_run(run.run_id, workspace=None)  # type: ignore[arg-type]
    return run.run_id


def wait_for(
    instance: dg.DagsterInstance, run_id: str, statuses, seconds: float = 60
) -> DagsterRun:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        run = instance.get_run_by_id(run_id)
        assert run is not None
        if run.status in statuses:
            return run
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} still {run.status} after {seconds} s")


def worker_gone(pid: int, seconds: float) -> bool:
    """Whether the worker `pid` is gone within `seconds`."""
    deadline = time.monotonic() + seconds
    while worker_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def captured(instance: dg.DagsterInstance, run_id: str) -> tuple[bytes, bytes]:
    [event] = instance.all_logs(run_id, of_type=dg.DagsterEventType.LOGS_CAPTURED)
    file_key = event.get_dagster_event().logs_captured_data.file_key
    manager = instance.compute_log_manager
    data = manager.get_log_data(manager.build_log_key_for_run(run_id, file_key))
    return data.stdout or b"", data.stderr or b""


def step_window(instance: dg.DagsterInstance, run_id: str) -> tuple[float, float]:
    started = instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START)
    ended = instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_SUCCESS)
    return started[0].timestamp, ended[0].timestamp


def test_runs_execute_at_once_in_one_worker_each_capturing_its_own_output(
    instance: dg.DagsterInstance, jobs_file: Path
) -> None:
    assert isinstance(instance.run_launcher, RunWorkerLauncher)
    config = {"ops": {"chatty": {"config": {"marker": "", "seconds": 2.0}}}}
    run_ids = {}
    for marker in ("alpha", "bravo"):
        config["ops"]["chatty"]["config"]["marker"] = marker
        run_ids[marker] = launch(instance, jobs_file, "chatty_job", config)

    runs = {marker: wait_for(instance, run_id, ENDED) for marker, run_id in run_ids.items()}

    assert {run.status for run in runs.values()} == {DagsterRunStatus.SUCCESS}
    pids = {run.tags[WORKER_PID_TAG] for run in runs.values()}
    assert len(pids) == 1, "both runs in one worker process"
    (alpha_start, alpha_end), (bravo_start, bravo_end) = (
        step_window(instance, run_ids["alpha"]),
        step_window(instance, run_ids["bravo"]),
    )
    assert alpha_start < bravo_end and bravo_start < alpha_end, "the runs overlapped"
    for marker, other in (("alpha", "bravo"), ("bravo", "alpha")):
        stdout, stderr = captured(instance, run_ids[marker])
        assert f"printed {marker}".encode() in stdout
        assert f"printed {other}".encode() not in stdout
        assert f"logged {marker}".encode() in stderr  # Dagster's console handler: stderr
        assert f"logged {other}".encode() not in stderr


def test_terminating_a_run_interrupts_it_and_the_worker_goes_on(
    instance: dg.DagsterInstance, jobs_file: Path
) -> None:
    run = start_waiting_run(instance, jobs_file)
    waiting = run.run_id

    assert instance.run_launcher.terminate(waiting)

    assert wait_for(instance, waiting, ENDED).status is DagsterRunStatus.CANCELED
    config = {"ops": {"chatty": {"config": {"marker": "after", "seconds": 0.0}}}}
    after = wait_for(instance, launch(instance, jobs_file, "chatty_job", config), ENDED)
    assert after.status is DagsterRunStatus.SUCCESS
    assert after.tags[WORKER_PID_TAG] == run.tags[WORKER_PID_TAG]


def start_waiting_run(instance: dg.DagsterInstance, jobs_file: Path) -> DagsterRun:
    """A run of `waits_job` whose op is running in the worker (until interrupted)."""
    run_id = launch(instance, jobs_file, "waits_job")
    run = wait_for(instance, run_id, (DagsterRunStatus.STARTED,))
    wait_until_logged(instance, run_id, "waiting to be terminated")
    return run


def wait_until_logged(instance: dg.DagsterInstance, run_id: str, text: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if any(text in (entry.user_message or "") for entry in instance.all_logs(run_id)):
            return
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} never logged {text!r}")


def test_a_dead_worker_fails_its_runs_health_check(
    instance: dg.DagsterInstance, jobs_file: Path
) -> None:
    run = start_waiting_run(instance, jobs_file)
    waiting = run.run_id
    launcher = instance.run_launcher
    assert launcher.supports_check_run_worker_health
    assert launcher.check_run_worker_health(run).status is WorkerStatus.RUNNING

    os.kill(int(run.tags[WORKER_PID_TAG]), signal.SIGKILL)
    assert worker_gone(int(run.tags[WORKER_PID_TAG]), seconds=10)

    assert launcher.check_run_worker_health(run).status is WorkerStatus.FAILED
    assert not launcher.terminate(waiting), "nothing is left to interrupt"


def test_a_run_canceled_before_a_worker_took_it_is_canceled_at_once(
    instance: dg.DagsterInstance, jobs_file: Path
) -> None:
    run = create_run(instance, jobs_file, "waits_job")
    # STARTING, as the launch marks it, but no worker was asked to serve this instance.
    starting = dg.DagsterEvent(
        event_type_value=dg.DagsterEventType.PIPELINE_STARTING.value, job_name=run.job_name
    )
    instance.report_dagster_event(starting, run_id=run.run_id)
    assert instance.get_run_by_id(run.run_id).status is DagsterRunStatus.STARTING
    assert instance.run_launcher.terminate(run.run_id)
    assert instance.get_run_by_id(run.run_id).status is DagsterRunStatus.CANCELED


def test_an_idle_worker_exits_and_changed_code_gets_a_new_one(
    instance: dg.DagsterInstance, jobs_file: Path
) -> None:
    config = {"ops": {"chatty": {"config": {"marker": "one", "seconds": 0.0}}}}
    first = wait_for(instance, launch(instance, jobs_file, "chatty_job", config), ENDED)
    first_pid = int(first.tags[WORKER_PID_TAG])

    # The job's module changes on disk: the worker stops taking runs and leaves.
    stat = jobs_file.stat()
    os.utime(jobs_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert worker_gone(first_pid, seconds=15), "the worker kept serving stale code"

    second = wait_for(instance, launch(instance, jobs_file, "chatty_job", config), ENDED)
    second_pid = int(second.tags[WORKER_PID_TAG])
    assert second.status is DagsterRunStatus.SUCCESS and second_pid != first_pid

    # Idle (4 s here) it exits by itself: nothing is left behind.
    assert worker_gone(second_pid, seconds=20)


def test_a_stopped_worker_interrupts_its_runs_and_leaves(
    instance: dg.DagsterInstance, jobs_file: Path
) -> None:
    """SIGTERM (a container's stop; Ctrl-C reaches it as SIGINT through the process group)."""
    run = start_waiting_run(instance, jobs_file)
    waiting = run.run_id
    pid = int(run.tags[WORKER_PID_TAG])

    os.kill(pid, signal.SIGTERM)

    assert wait_for(instance, waiting, ENDED, seconds=30).status is DagsterRunStatus.FAILURE
    assert worker_gone(pid, seconds=15)


def test_a_starting_worker_serves_before_its_imports_so_its_launch_is_not_held_up(
    tmp_path: Path,
) -> None:
    """The launch that starts a worker waits until it serves (holds the lock); the worker takes
    the lock first and imports Dagster and reads the instance after, so the run queue's next
    launches are not held up by its start (a worker that never gets its instance leaves)."""
    directory = tmp_path / "run_worker"
    worker = subprocess.Popen(
        [sys.executable, "-m", WORKER_MODULE, "--directory", str(directory)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while not is_served(directory):  # the instance is not even written to it yet
            assert worker.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        assert worker.stdin is not None
        worker.stdin.close()  # no instance: it cannot serve one
        returncode = worker.wait(timeout=30)
    assert returncode != 0
    assert not is_served(directory), "a worker that left released the lock"


def test_a_run_handed_to_a_serving_worker_starts_without_waiting_for_its_next_poll(
    tmp_path: Path, jobs_file: Path
) -> None:
    """The launcher nudges the serving worker, so a wave does not wait up to `poll_seconds`."""
    config = {"ops": {"chatty": {"config": {"marker": "one", "seconds": 0.0}}}}
    with worker_instance(tmp_path, poll_seconds=60.0) as instance:
        first = wait_for(instance, launch(instance, jobs_file, "chatty_job", config), ENDED)
        second = wait_for(
            instance, launch(instance, jobs_file, "chatty_job", config), ENDED, seconds=20
        )
        assert first.status is second.status is DagsterRunStatus.SUCCESS
        assert second.tags[WORKER_PID_TAG] == first.tags[WORKER_PID_TAG]


def test_a_terminated_run_is_interrupted_without_waiting_for_the_next_poll(
    tmp_path: Path, jobs_file: Path
) -> None:
    """The launcher nudges the worker that runs it: a cancel in the UI takes effect at once."""
    with worker_instance(tmp_path, poll_seconds=60.0) as instance:
        run = start_waiting_run(instance, jobs_file)
        assert instance.run_launcher.terminate(run.run_id)
        ended = wait_for(instance, run.run_id, ENDED, seconds=20)
        assert ended.status is DagsterRunStatus.CANCELED
