"""What the demo asks the Dagster webserver (its GraphQL API) and where it points in the UI.

Asking the webserver, rather than opening the instance's SQLite files next to the daemon, also
shows that the UI serves what the demo describes.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

import httpx

from services.waves import JOB_NAME, TENANT_TAG

LOCATION = "industrial_orchestrator"  # workspace.yaml's location_name
ASSET = "coding_sessions"
UNFINISHED_RUN_STATES = frozenset(
    {"QUEUED", "NOT_STARTED", "MANAGED", "STARTING", "STARTED", "CANCELING"}
)
GRAPHQL_TIMEOUT_SECONDS = 10.0

RUNS_QUERY = """
query DemoRuns($job: String!) {
  runsOrError(filter: {pipelineName: $job}, limit: 500) {
    __typename
    ... on Runs { results { runId status tags { key value } } }
    ... on PythonError { message }
  }
}
"""

MATERIALIZATIONS_QUERY = """
query DemoMaterializations($path: [String!]!) {
  assetOrError(assetKey: {path: $path}) {
    __typename
    ... on Asset { assetMaterializations(limit: 1000) { partition } }
  }
}
"""


@dataclass(frozen=True)
class WaveRun:
    run_id: str
    status: str
    tenant: str


@dataclass(frozen=True)
class UiLinks:
    base: str

    @property
    def runs(self) -> str:
        return f"{self.base}/locations/{LOCATION}/jobs/{JOB_NAME}/runs"

    @property
    def asset_partitions(self) -> str:
        return f"{self.base}/assets/{ASSET}?view=partitions"

    @property
    def sensors(self) -> str:
        return f"{self.base}/locations/{LOCATION}/sensors"


def ask(base: str, query: str, variables: dict[str, object]) -> dict[str, object]:
    response = httpx.post(
        f"{base}/graphql",
        json={"query": query, "variables": variables},
        timeout=GRAPHQL_TIMEOUT_SECONDS,
    )
    response.raise_for_status()
    body = response.json()
    if body.get("errors"):
        raise RuntimeError(f"GraphQL: {body['errors'][0].get('message')}")
    return body["data"]


def wave_runs(base: str) -> list[WaveRun]:
    answer = ask(base, RUNS_QUERY, {"job": JOB_NAME})["runsOrError"]
    if answer.get("__typename") != "Runs":
        raise RuntimeError(f"runs: {answer.get('message', answer.get('__typename'))}")
    return [
        WaveRun(
            run["runId"],
            run["status"],
            next((tag["value"] for tag in run["tags"] if tag["key"] == TENANT_TAG), "-"),
        )
        for run in answer["results"]
    ]


def materialized_partitions(base: str) -> Counter[str]:
    """Materializations of `coding_sessions` per tenant partition (none yet: empty)."""
    answer = ask(base, MATERIALIZATIONS_QUERY, {"path": [ASSET]})["assetOrError"]
    if answer.get("__typename") != "Asset":
        return Counter()
    return Counter(item["partition"] for item in answer["assetMaterializations"])


def wait_for_runs_to_end(base: str, seconds: float) -> list[WaveRun]:
    """The wave runs once none is queued or running (or after `seconds`, as they are then)."""
    deadline = time.monotonic() + seconds
    while True:
        runs = wave_runs(base)
        if all(run.status not in UNFINISHED_RUN_STATES for run in runs):
            return runs
        if time.monotonic() > deadline:
            return runs
        time.sleep(1.0)
