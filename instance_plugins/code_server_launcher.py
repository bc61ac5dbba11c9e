"""Dagster's DefaultRunLauncher (each run a process of the gRPC code server that launched it),
with the worker health check that run monitoring needs.

Without it, a run whose process died (killed, OOM, or the code server killed with its runs)
stays STARTED until the instance's maximum runtime (2 h in deploy/dagster.yaml): it holds one
of its tenant's run-queue slots (`tag_concurrency_limits`, 2 per tenant) all that time, so the
waves that would adopt its sessions wait QUEUED behind it. Found by the chaos suite
(tests/chaos/).

The check asks the code server named in the run's `.dagster/grpc_info` tag (where the launcher
started it) whether it is executing the run (`CanCancelExecution`, which `dagster code-server
start`'s proxy forwards; its `GetCurrentRuns` it does not): a run it is not executing is dead
(FAILED: monitoring fails it, then the wave-failure sensor hands its sessions back). A code
server that does not answer says nothing either way (it may be restarting on the same port):
the run counts as RUNNING until it does. Limitation: after a code reload without a restart
(`ReloadCode`: the proxy's new child answers, the old one still runs the earlier runs) those
runs would be reported FAILED; deploy new code by restarting the code server.
"""

from __future__ import annotations

import json

from dagster import DagsterRun, DefaultRunLauncher

from instance_plugins.dagster_internals import (
    GRPC_INFO_TAG,
    CanCancelExecutionRequest,
    CanCancelExecutionResult,
    CheckRunHealthResult,
    DagsterGrpcClient,
    WorkerStatus,
    deserialize_value,
)


class CodeServerRunLauncher(DefaultRunLauncher):
    """DefaultRunLauncher whose runs' health is their code server's own list of executions."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        info = run.tags.get(GRPC_INFO_TAG)
        if info is None:
            return CheckRunHealthResult(WorkerStatus.RUNNING, "not launched on a code server yet")
        where = json.loads(info)
        client = DagsterGrpcClient(
            host=where.get("host"),
            port=where.get("port"),
            socket=where.get("socket"),
            use_ssl=bool(where.get("use_ssl")),
        )
        try:
            answer = client.can_cancel_execution(CanCancelExecutionRequest(run_id=run.run_id))
            executing = deserialize_value(answer, CanCancelExecutionResult).can_cancel
        except Exception as error:  # unreachable (restarting?): cannot tell
            return CheckRunHealthResult(
                WorkerStatus.RUNNING, f"code server {info} did not answer: {error!r}"
            )
        if executing:
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        return CheckRunHealthResult(
            WorkerStatus.FAILED,
            f"the code server {info} is not executing the run (its process is gone)",
        )
