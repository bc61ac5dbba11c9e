"""Compute logs of a real run land in the instance's files, without helper processes per run.

Dagster's own LocalComputeLogManager mirrors a step's captured output back to the process's
streams through a `tail` process and a Python watcher per stream: four processes (~25 MB) beside
every wave run. The project's manager captures to the same files and starts none.
"""

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from instance_plugins.compute_logs import FileComputeLogManager


def _children() -> list[int]:
    """Every live child process of this process (all threads)."""
    found: list[int] = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        children = (task / "children").read_text().split()
        found.extend(int(pid) for pid in children)
    return found


@dg.op
def talkative(context: dg.OpExecutionContext) -> list[int]:
    print("printed by the op", flush=True)
    # Below Python's buffers: the descriptor itself is redirected (pytest's own capture has
    # already swapped sys.stderr, so not fd 2 here but the one it stands on).
    os.write(sys.stderr.fileno(), b"written to the descriptor\n")
    context.log.info("logged by the op")
    return _children()


@dg.job
def talkative_job() -> None:
    talkative()


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    capture = {
        "module": "instance_plugins.compute_logs",
        "class": "FileComputeLogManager",
        "config": {"base_dir": str(tmp_path / "logs")},
    }
    with dg.instance_for_test(overrides={"compute_logs": capture}) as instance:
        yield instance


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_a_run_captures_stdout_and_stderr_into_files_without_helper_processes(
    instance: dg.DagsterInstance,
) -> None:
    assert isinstance(instance.compute_log_manager, FileComputeLogManager)
    before = set(_children())  # what earlier tests of this process left is not the step's
    result = talkative_job.execute_in_process(instance=instance, raise_on_error=True)

    # No tail, no watcher beside the step.
    assert set(result.output_for_node("talkative")) - before == set()
    captured = instance.all_logs(result.run_id, of_type=dg.DagsterEventType.LOGS_CAPTURED)
    assert captured, "the run announced no captured logs"
    file_key = captured[0].get_dagster_event().logs_captured_data.file_key
    manager = instance.compute_log_manager
    log_key = manager.build_log_key_for_run(result.run_id, file_key)
    data = manager.get_log_data(log_key)
    assert data.stdout is not None and b"printed by the op" in data.stdout
    assert data.stderr is not None and b"written to the descriptor" in data.stderr
    assert b"logged by the op" in data.stderr  # Dagster's console handler writes to stderr
    assert manager.is_capture_complete(log_key)


def test_the_files_default_to_where_dagster_keeps_them(tmp_path: Path) -> None:
    """Under the instance's root, wherever it was loaded from (no DAGSTER_HOME needed)."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        "compute_logs:\n  module: instance_plugins.compute_logs\n"
        "  class: FileComputeLogManager\ntelemetry:\n  enabled: false\n"
    )
    with dg.DagsterInstance.from_config(str(home)) as instance:
        manager = instance.compute_log_manager
        assert isinstance(manager, FileComputeLogManager)
        path = Path(manager.get_captured_local_path(["run", "compute_logs", "k"], "out"))
    assert path.is_relative_to(home / "storage")
