"""Dagster's runs through the webserver's GraphQL API: Dagster's public way in from outside the
daemon and the code location (what its UI's launchpad and `DagsterGraphQLClient` use).

Its documents: `runsOrError` (is a run of the job with these tags queued or running?),
`launchRun` (create the run; under the instance's run queue it waits there for its turn, under
the per-tenant tag limits, like a sensor's run), and `sensorOrError` then `stopSensor` (what the
UI's toggle does: no `dagster sensor stop` process loading the code location once more). Plain
httpx rather than `dagster-graphql`'s client: that one fetches the whole schema per client and
imports Dagster, which the CLI and the API otherwise never load. Explicit timeouts; a query
answered 429/5xx is tried once more, a launch never (a launch whose answer was lost may have
created its run).
"""

from __future__ import annotations

from typing import Any

import httpx

DEFAULT_LOCATION = "industrial_orchestrator"  # workspace.yaml, deploy/workspace.yaml
DEFAULT_REPOSITORY = "__repository__"  # the name Dagster gives a module's `Definitions`
LIVE_STATUSES = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED")
RETRIED_STATUSES = frozenset({429, 502, 503, 504})

LIVE_RUNS_QUERY = """
query LiveRuns($filter: RunsFilter!) {
  runsOrError(filter: $filter, limit: 1) {
    __typename
    ... on Runs { results { runId } }
    ... on Error { message }
  }
}
"""

LAUNCH_RUN_MUTATION = """
mutation LaunchRun($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on Error { message }
  }
}
"""


SENSOR_QUERY = """
query Sensor($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) {
    __typename
    ... on Sensor { id }
    ... on Error { message }
  }
}
"""

STOP_SENSOR_MUTATION = """
mutation StopSensor($id: String!) {
  stopSensor(id: $id) {
    __typename
    ... on StopSensorMutationResult { instigationState { status } }
    ... on Error { message }
  }
}
"""


class DagsterWebserverError(Exception):
    """The webserver answered, but not with what was asked (the GraphQL error type and text)."""

    def __init__(self, operation: str, kind: str, detail: str) -> None:
        self.operation, self.kind, self.detail = operation, kind, detail
        super().__init__(f"{operation}: {kind}: {detail}"[:500])


class DagsterWebserver:
    """Runs of the code location's jobs, through the webserver at `url`."""

    def __init__(
        self,
        url: str,
        *,
        location_name: str = DEFAULT_LOCATION,
        repository_name: str = DEFAULT_REPOSITORY,
        timeout_seconds: float = 3.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._endpoint = url.rstrip("/") + "/graphql"
        self._location = location_name
        self._repository = repository_name
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout_seconds, connect=min(1.0, timeout_seconds)),
            transport=transport,
        )

    def has_live_run(self, job_name: str, tags: dict[str, str]) -> bool:
        """True when a run of `job_name` carrying all of `tags` is queued, starting or running."""
        run_filter = {
            "pipelineName": job_name,
            "tags": [{"key": k, "value": v} for k, v in tags.items()],
            "statuses": list(LIVE_STATUSES),
        }
        answer = self._post("runsOrError", LIVE_RUNS_QUERY, {"filter": run_filter}, retry=True)
        if answer.get("__typename") != "Runs":
            raise DagsterWebserverError("runsOrError", answer.get("__typename", "?"), str(answer))
        return bool(answer["results"])

    def launch_run(self, job_name: str, run_config: dict[str, object], tags: dict[str, str]) -> str:
        """The id of the new run of `job_name` (queued under the instance's run coordinator)."""
        params = {
            "selector": {
                "repositoryLocationName": self._location,
                "repositoryName": self._repository,
                "jobName": job_name,
            },
            "runConfigData": run_config,
            "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]},
        }
        answer = self._post("launchRun", LAUNCH_RUN_MUTATION, {"executionParams": params})
        kind = answer.get("__typename", "?")
        if kind != "LaunchRunSuccess":
            detail = answer.get("message") or "; ".join(
                e.get("message", "") for e in answer.get("errors", [])
            )
            raise DagsterWebserverError("launchRun", kind, detail or str(answer))
        return str(answer["run"]["runId"])

    def stop_sensor(self, name: str) -> None:
        """Stops the code location's sensor `name` (it stays stopped across daemon restarts)."""
        selector = {
            "repositoryLocationName": self._location,
            "repositoryName": self._repository,
            "sensorName": name,
        }
        sensor = self._post("sensorOrError", SENSOR_QUERY, {"selector": selector}, retry=True)
        if sensor.get("__typename") != "Sensor":
            kind = sensor.get("__typename", "?")
            raise DagsterWebserverError("sensorOrError", kind, sensor.get("message", name))
        stopped = self._post("stopSensor", STOP_SENSOR_MUTATION, {"id": sensor["id"]})
        if stopped.get("__typename") != "StopSensorMutationResult":
            kind = stopped.get("__typename", "?")
            raise DagsterWebserverError("stopSensor", kind, stopped.get("message", str(stopped)))

    def _post(
        self, field: str, document: str, variables: dict[str, Any], *, retry: bool = False
    ) -> dict[str, Any]:
        body = {"query": document, "variables": variables}
        response = self._client.post(self._endpoint, json=body)
        if retry and response.status_code in RETRIED_STATUSES:
            response = self._client.post(self._endpoint, json=body)
        response.raise_for_status()
        payload = response.json()
        if payload.get("errors"):
            messages = "; ".join(str(e.get("message")) for e in payload["errors"])
            raise DagsterWebserverError(field, "GraphQLError", messages)
        return payload["data"][field]

    def close(self) -> None:
        self._client.close()
