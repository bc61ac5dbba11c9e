"""Compute-log capture for the Dagster instance: to files, with no processes beside each run.

Dagster's `LocalComputeLogManager` also mirrors a step's captured output back to the process's
own stdout/stderr, through a `tail -F` and a Python watcher process per stream: four processes
(~25 MB, ~0.1 CPU-s to start) beside every wave run. A launched run's own streams are read by
no one; the captured files are what the UI shows. This manager writes those same files, under
the same keys and layout, and starts nothing. In the run worker, where several runs share one
process, the capture routes each run's thread instead of the process's descriptors
(`instance_plugins.run_worker.thread_streams`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Generator, Sequence
from contextlib import contextmanager
from typing import Any

from dagster import DagsterInstance, Field, Float, StringSource

from instance_plugins.dagster_internals import (
    IO_TYPE_EXTENSION,
    CapturedLogContext,
    ComputeIOType,
    ConfigurableClassData,
    LocalComputeLogManager,
    UserConfigSchema,
    ensure_file,
    redirect_to_file,
    touch_file,
)
from instance_plugins.run_worker import thread_streams


class FileComputeLogManager(LocalComputeLogManager):
    """`LocalComputeLogManager` without the mirror.

    `base_dir` defaults to `<instance root>/storage`, where Dagster's default manager keeps them
    (the root is DAGSTER_HOME, or the directory an instance was loaded from).
    """

    def __init__(
        self,
        base_dir: str | None = None,
        polling_timeout: float | None = None,
        inst_data: ConfigurableClassData | None = None,
    ) -> None:
        super().__init__(base_dir or "", polling_timeout=polling_timeout, inst_data=inst_data)
        self._base_dir_configured = base_dir is not None

    @classmethod
    def config_type(cls) -> UserConfigSchema:
        return {
            "base_dir": Field(StringSource, is_required=False),
            "polling_timeout": Field(Float, is_required=False),
        }

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: dict[str, Any]
    ) -> FileComputeLogManager:
        return cls(inst_data=inst_data, **config_value)

    def register_instance(self, instance: DagsterInstance) -> None:
        super().register_instance(instance)
        if not self._base_dir_configured:
            self._base_dir = os.path.join(instance.root_directory, "storage")

    @contextmanager
    def capture_logs(self, log_key: Sequence[str]) -> Generator[CapturedLogContext, None, None]:
        stdout_path = self.get_captured_local_path(log_key, IO_TYPE_EXTENSION[ComputeIOType.STDOUT])
        stderr_path = self.get_captured_local_path(log_key, IO_TYPE_EXTENSION[ComputeIOType.STDERR])
        ensure_file(stdout_path)
        ensure_file(stderr_path)
        routed = thread_streams.installed()
        if routed is None:
            with (
                redirect_to_file(sys.stdout, stdout_path),
                redirect_to_file(sys.stderr, stderr_path),
            ):
                yield CapturedLogContext(log_key)
        else:
            out_stream, err_stream = routed
            with (
                open(stdout_path, "a", encoding="utf-8") as out_file,
                open(stderr_path, "a", encoding="utf-8") as err_file,
                out_stream.routed_to(out_file),
                err_stream.routed_to(err_file),
            ):
                yield CapturedLogContext(log_key)
        touch_file(self.complete_artifact_path(log_key))  # the UI stops polling a finished capture
