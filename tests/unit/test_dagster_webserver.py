"""The webserver adapter speaks Dagster's GraphQL: what it sends and how it reads the answers.

Contract: a live-run query filters on the job, every tag and the queued-to-started statuses; a
launch names the code location, repository and job, and sends the run config and tags; an
answer of another type (a Python error, an invalid config) raises `DagsterWebserverError` with
its type and text; a query answered 503 is tried once more, a launch never. The real webserver
answers these documents in tests/e2e/test_launch_on_submit.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from resources.dagster_webserver import DagsterWebserver, DagsterWebserverError

Answer = Callable[[dict[str, Any]], httpx.Response]


def webserver(answer: Answer, sent: list[dict[str, Any]]) -> DagsterWebserver:
    def handle(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/graphql"
        body = json.loads(request.content)
        sent.append(body)
        return answer(body)

    return DagsterWebserver("http://dagster.test/", transport=httpx.MockTransport(handle))


def data(field: str, value: dict[str, Any]) -> httpx.Response:
    return httpx.Response(200, json={"data": {field: value}})


def test_a_live_run_query_filters_on_the_job_its_tags_and_the_live_statuses() -> None:
    sent: list[dict[str, Any]] = []
    runs = webserver(lambda _: data("runsOrError", {"__typename": "Runs", "results": []}), sent)
    assert runs.has_live_run("session_wave", {"tenant": "acme"}) is False
    run_filter = sent[0]["variables"]["filter"]
    assert run_filter["pipelineName"] == "session_wave"
    assert run_filter["tags"] == [{"key": "tenant", "value": "acme"}]
    assert set(run_filter["statuses"]) == {"QUEUED", "NOT_STARTED", "STARTING", "STARTED"}


def test_a_launch_names_the_location_repository_and_job_and_returns_the_run_id() -> None:
    sent: list[dict[str, Any]] = []
    success = {"__typename": "LaunchRunSuccess", "run": {"runId": "r-1"}}
    runs = webserver(lambda _: data("launchRun", success), sent)
    config = {"ops": {"supervise_wave": {"config": {"tenant": "acme"}}}}
    assert runs.launch_run("session_wave", config, {"tenant": "acme"}) == "r-1"
    params = sent[0]["variables"]["executionParams"]
    assert params["selector"] == {
        "repositoryLocationName": "industrial_orchestrator",
        "repositoryName": "__repository__",
        "jobName": "session_wave",
    }
    assert params["runConfigData"] == config
    assert params["executionMetadata"]["tags"] == [{"key": "tenant", "value": "acme"}]


@pytest.mark.parametrize(
    "answer, match",
    [
        # Dagster's own failure, with its message
        ({"__typename": "PythonError", "message": "boom"}, "PythonError: boom"),
        # a run config the job refuses, with each error's message
        (
            {"__typename": "RunConfigValidationInvalid", "errors": [{"message": "bad tenant"}]},
            "RunConfigValidationInvalid: bad tenant",
        ),
    ],
)
def test_a_launch_answered_with_an_error_raises_it(answer: dict[str, Any], match: str) -> None:
    runs = webserver(lambda _: data("launchRun", answer), [])
    with pytest.raises(DagsterWebserverError, match=match):
        runs.launch_run("session_wave", {}, {})


def test_a_query_answered_503_is_tried_once_more_a_launch_never() -> None:
    sent: list[dict[str, Any]] = []
    runs = webserver(lambda _: httpx.Response(503), sent)
    with pytest.raises(httpx.HTTPStatusError):
        runs.has_live_run("session_wave", {})
    assert len(sent) == 2
    sent.clear()
    with pytest.raises(httpx.HTTPStatusError):
        runs.launch_run("session_wave", {}, {})
    assert len(sent) == 1


def test_stopping_a_sensor_finds_it_in_the_location_then_stops_it_by_id() -> None:
    sent: list[dict[str, Any]] = []
    stopped = {"__typename": "StopSensorMutationResult", "instigationState": {"status": "STOPPED"}}

    def answer(body: dict[str, Any]) -> httpx.Response:
        if "sensorSelector" in body["query"]:
            return data("sensorOrError", {"__typename": "Sensor", "id": "s-1"})
        return data("stopSensor", stopped)

    webserver(answer, sent).stop_sensor("dispatch_sensor")
    assert sent[0]["variables"]["selector"] == {
        "repositoryLocationName": "industrial_orchestrator",
        "repositoryName": "__repository__",
        "sensorName": "dispatch_sensor",
    }
    assert sent[1]["variables"] == {"id": "s-1"}


@pytest.mark.parametrize(
    "sensor, stop, match",
    [
        ({"__typename": "SensorNotFoundError", "message": "no such"}, None, "no such"),
        (
            {"__typename": "Sensor", "id": "s-1"},
            {"__typename": "PythonError", "message": "boom"},
            "PythonError: boom",
        ),
    ],
)
def test_a_sensor_not_found_or_not_stopped_raises(
    sensor: dict[str, Any], stop: dict[str, Any] | None, match: str
) -> None:
    def answer(body: dict[str, Any]) -> httpx.Response:
        if "sensorSelector" in body["query"]:
            return data("sensorOrError", sensor)
        return data("stopSensor", stop or {})

    with pytest.raises(DagsterWebserverError, match=match):
        webserver(answer, []).stop_sensor("dispatch_sensor")
