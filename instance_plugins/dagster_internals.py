"""Every private `dagster._` name the instance plugins use, imported here and nowhere else.

Dagster keeps the run-launcher and compute-log-manager interfaces under `dagster._core`; they
move between releases, as do the workspace and test helpers the bench and the tests use to
create runs the way the daemon does. One module holds them, and
`tests/unit/test_dagster_internals.py` imports each, so an upgrade that moved one fails that test
by name instead of a run at launch time.
Public names (`dagster.DagsterRun`, `dagster.RunsFilter`, ...) are imported from `dagster`.
"""

from dagster._config import UserConfigSchema
from dagster._core.definitions.reconstruct import ReconstructableRepository
from dagster._core.definitions.selector import JobSubsetSelector
from dagster._core.events import EngineEventData
from dagster._core.execution.compute_logs import redirect_to_file
from dagster._core.instance.ref import InstanceRef
from dagster._core.launcher import CheckRunHealthResult, LaunchRunContext, RunLauncher, WorkerStatus
from dagster._core.storage.compute_log_manager import CapturedLogContext, ComputeIOType
from dagster._core.storage.local_compute_log_manager import (
    IO_TYPE_EXTENSION,
    LocalComputeLogManager,
)
from dagster._core.storage.tags import GRPC_INFO_TAG, RUN_KEY_TAG
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import GrpcServerTarget, ModuleTarget
from dagster._grpc.client import DagsterGrpcClient
from dagster._grpc.impl import core_execute_run
from dagster._grpc.types import CanCancelExecutionRequest, CanCancelExecutionResult
from dagster._serdes import ConfigurableClass, ConfigurableClassData, deserialize_value
from dagster._utils import ensure_file, touch_file
from dagster._utils.error import serializable_error_info_from_exc_info
from dagster._utils.hosted_user_process import recon_job_from_origin

__all__ = [
    "GRPC_INFO_TAG",
    "IO_TYPE_EXTENSION",
    "RUN_KEY_TAG",
    "CanCancelExecutionRequest",
    "CanCancelExecutionResult",
    "CapturedLogContext",
    "CheckRunHealthResult",
    "ComputeIOType",
    "ConfigurableClass",
    "ConfigurableClassData",
    "DagsterGrpcClient",
    "EngineEventData",
    "GrpcServerTarget",
    "InstanceRef",
    "JobSubsetSelector",
    "LaunchRunContext",
    "LocalComputeLogManager",
    "ModuleTarget",
    "ReconstructableRepository",
    "RunLauncher",
    "UserConfigSchema",
    "WorkerStatus",
    "WorkspaceProcessContext",
    "core_execute_run",
    "deserialize_value",
    "ensure_file",
    "recon_job_from_origin",
    "redirect_to_file",
    "serializable_error_info_from_exc_info",
    "touch_file",
]


# Names resolved on first use (`__getattr__`), not at import.
LAZY_NAMES = ("create_run_for_test",)


def __getattr__(name: str) -> object:
    """`create_run_for_test` on first use only: `dagster._core.test_utils` imports Alembic, which
    the code location (its sensors import this module) must not load."""
    if name == "create_run_for_test":
        from dagster._core.test_utils import create_run_for_test

        return create_run_for_test
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
