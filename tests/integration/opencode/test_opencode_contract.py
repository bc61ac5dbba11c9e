"""Contract of the real OpenCode server (opencode-ai 1.18.33) as the orchestrator uses it.

Plain httpx against the documented V1 routes, a real ``opencode serve`` process, the real scripted
model; no mocks. What these tests pin down is what the OpenCode client resource relies on (see
``standins/README.md``): session creation, ``prompt_async`` + the ``GET /event`` stream, busy →
idle, files written into the git workspace and the per-message diff, tokens and cost on the
assistant messages, and how a model error, model retries and an abort show up.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from typing import Any

import httpx
import pytest

from standins.opencode_server import OPENCODE_VERSION, OpenCodeServer
from standins.scripted_model import ScriptedModel
from tests.integration.opencode.event_stream import (
    EventStream,
    lifecycle,
    recorded_lifecycle,
    session_of,
)
from tests.integration.opencode.support import settled_diff

pytestmark = pytest.mark.timeout(120)

SESSION_TIMEOUT_SECONDS = 45.0
OPENCODE_SHARED_SERVER = True  # read by the opencode_server fixture: one server for the package
PROMPT_TRACE = "events-prompt-sync-and-async.sse"
ERRORS_TRACE = "events-errors-retry-permission.sse"


# --- helpers ----------------------------------------------------------------------------------


def create_session(client: httpx.Client, title: str | None = None) -> dict[str, Any]:
    response = client.post("/session", json={"title": title} if title else {})
    assert response.status_code == 200, response.text
    return response.json()


def prompt_async(client: httpx.Client, session_id: str, text: str) -> None:
    response = client.post(
        f"/session/{session_id}/prompt_async", json={"parts": [{"type": "text", "text": text}]}
    )
    assert response.status_code == 204, response.text


def messages(client: httpx.Client, session_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/session/{session_id}/message")
    assert response.status_code == 200, response.text
    return response.json()


def settled_messages(
    client: httpx.Client, events: EventStream, session_id: str
) -> list[dict[str, Any]]:
    """Wait for ``session.idle``, then for every assistant message to be completed (OpenCode
    writes the final ``message.updated`` a few ms after ``session.idle``)."""
    events.wait_for_session(session_id, "session.idle", SESSION_TIMEOUT_SECONDS)
    deadline = time.monotonic() + 10
    while True:
        found = messages(client, session_id)
        assistants = [m for m in found if m["info"]["role"] == "assistant"]
        if assistants and all(m["info"]["time"].get("completed") for m in assistants):
            return found
        assert time.monotonic() < deadline, f"assistant messages never completed: {found}"
        time.sleep(0.1)


def run_prompt(
    client: httpx.Client, events: EventStream, text: str
) -> tuple[str, list[dict[str, Any]]]:
    session_id = create_session(client)["id"]
    prompt_async(client, session_id, text)
    return session_id, settled_messages(client, events, session_id)


def assistant_messages(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [message for message in found if message["info"]["role"] == "assistant"]


def model_requests(model: ScriptedModel, session_id: str) -> list[dict[str, Any]]:
    """The scripted model's agent requests (not the title generator's) of one session."""
    return [
        request
        for request in model.requests()
        if request["headers"].get("x-session-id") == session_id and request["script"] != "title"
    ]


def nonce() -> str:
    return uuid.uuid4().hex[:8]


# --- tests ------------------------------------------------------------------------------------


def test_health_answers_with_the_pinned_version(opencode_client: httpx.Client) -> None:
    response = opencode_client.get("/global/health")
    assert response.status_code == 200
    assert response.json() == {"healthy": True, "version": OPENCODE_VERSION}


def test_post_session_creates_a_session_in_the_workspace(
    opencode_client: httpx.Client, opencode_server: OpenCodeServer
) -> None:
    session = create_session(opencode_client, title="contract")
    assert session["id"].startswith("ses_")
    assert session["title"] == "contract"
    assert session["directory"] == str(opencode_server.workspace)
    assert session["version"] == OPENCODE_VERSION
    fetched = opencode_client.get(f"/session/{session['id']}")
    assert fetched.status_code == 200
    assert fetched.json()["id"] == session["id"]
    assert opencode_client.get("/session/status").json().get(session["id"]) is None  # idle


def test_text_prompt_lifecycle_matches_the_recorded_trace(
    opencode_client: httpx.Client, opencode_events: EventStream
) -> None:
    session_id, found = run_prompt(opencode_client, opencode_events, f"Say hello {nonce()}")
    states = lifecycle(opencode_events.events(), session_id)
    assert states == recorded_lifecycle(PROMPT_TRACE, "Say hello")
    assert states == ["status:busy", "status:idle", "idle"]
    (assistant,) = assistant_messages(found)
    assert assistant["info"]["finish"] == "stop"
    assert [part["type"] for part in assistant["parts"]] == ["step-start", "text", "step-finish"]


def test_write_script_edits_the_workspace_with_diff_tokens_and_cost(
    opencode_client: httpx.Client,
    opencode_events: EventStream,
    opencode_server: OpenCodeServer,
    scripted_model: ScriptedModel,
) -> None:
    path = f"notes/hello-{nonce()}.md"
    content = "# Hello\nwritten by the scripted model\n"
    session_id, found = run_prompt(
        opencode_client,
        opencode_events,
        f'Write the notes [script:write path={path} content="# Hello\\nwritten by the scripted '
        f'model\\n" reply="Wrote the notes."]',
    )

    # the event stream: busy first, the write tool runs (file.edited names the file, not the
    # session), idle last
    absolute = str(opencode_server.workspace / path)
    types = [
        event["type"]
        for event in opencode_events.events()
        if session_of(event) == session_id or event["properties"].get("file") == absolute
    ]
    statuses = [
        event["properties"]["status"]["type"]
        for event in opencode_events.events(session_id)
        if event["type"] == "session.status"
    ]
    assert statuses[0] == "busy"
    assert statuses[-1] == "idle"
    assert "session.error" not in types
    tool_states = [
        event["properties"]["part"]["state"]["status"]
        for event in opencode_events.events(session_id)
        if event["type"] == "message.part.updated" and event["properties"]["part"]["type"] == "tool"
    ]
    assert tool_states[-1] == "completed"
    assert types.index("session.status") < types.index("file.edited") < types.index("session.idle")

    # the file really is in the git workspace, uncommitted
    workspace = opencode_server.workspace
    assert workspace is not None
    assert (workspace / path).read_text() == content
    porcelain = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=workspace,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"?? {path}" in porcelain.splitlines()

    # the diff of the user message names the file
    user_message_id = next(m["info"]["id"] for m in found if m["info"]["role"] == "user")
    diff = settled_diff(opencode_client, session_id, user_message_id)
    (file_diff,) = [entry for entry in diff if entry["file"] == path]
    assert file_diff["status"] == "added"
    assert file_diff["additions"] == 2
    assert "+# Hello" in file_diff["patch"]

    # two model turns: a tool call, then the final text; each with tokens and cost
    first, second = assistant_messages(found)
    assert first["info"]["finish"] == "tool-calls"
    assert second["info"]["finish"] == "stop"
    (tool_part,) = [part for part in first["parts"] if part["type"] == "tool"]
    assert tool_part["tool"] == "write"
    assert tool_part["state"]["status"] == "completed"
    assert tool_part["state"]["input"] == {"filePath": str(workspace / path), "content": content}
    assert any(
        part["type"] == "text" and part["text"] == "Wrote the notes." for part in second["parts"]
    )
    for message in (first, second):
        tokens = message["info"]["tokens"]
        assert tokens["input"] > 1000  # OpenCode's system prompt and tools: thousands of tokens
        assert tokens["output"] > 0
        assert message["info"]["cost"] > 0
        expected_cost = (tokens["input"] * 3 + tokens["output"] * 15) / 1_000_000
        assert message["info"]["cost"] == pytest.approx(expected_cost, rel=1e-6)

    # the session totals add the messages up
    session = opencode_client.get(f"/session/{session_id}").json()
    assert session["cost"] == pytest.approx(first["info"]["cost"] + second["info"]["cost"])
    assert session["tokens"]["input"] == (
        first["info"]["tokens"]["input"] + second["info"]["tokens"]["input"]
    )

    # the model saw exactly two agent turns of this session, the second with the tool result
    turns = model_requests(scripted_model, session_id)
    assert [turn["decision"] for turn in turns] == ["tool_calls", "text"]
    assert any(message["role"] == "tool" for message in turns[1]["body"]["messages"])


def test_model_401_ends_the_prompt_with_session_error(
    opencode_client: httpx.Client, opencode_events: EventStream, scripted_model: ScriptedModel
) -> None:
    session_id, found = run_prompt(
        opencode_client, opencode_events, f"[script:fail-401 message=bad-key] {nonce()}"
    )
    error_event = opencode_events.wait_for_session(session_id, "session.error", 1)
    error = error_event["properties"]["error"]
    assert error["name"] == "APIError"
    assert error["data"]["statusCode"] == 401
    assert error["data"]["isRetryable"] is False
    assert error["data"]["message"] == "bad-key"
    assert lifecycle(opencode_events.events(), session_id) == recorded_lifecycle(
        ERRORS_TRACE, "FAIL401"
    )
    (assistant,) = assistant_messages(found)
    assert assistant["info"]["error"]["name"] == "APIError"
    assert assistant["info"]["cost"] == 0
    assert len(model_requests(scripted_model, session_id)) == 1  # no retry


def test_model_5xx_is_retried_then_succeeds(
    opencode_client: httpx.Client, opencode_events: EventStream, scripted_model: ScriptedModel
) -> None:
    session_id, found = run_prompt(
        opencode_client,
        opencode_events,
        f"[script:fail-5xx times=2 status=503 retry_after=0.2] {nonce()}",
    )
    retries = [
        event["properties"]["status"]
        for event in opencode_events.events(session_id)
        if event["type"] == "session.status" and event["properties"]["status"]["type"] == "retry"
    ]
    assert [retry["attempt"] for retry in retries] == [1, 2]
    assert all(retry["message"] == "scripted upstream failure" for retry in retries)
    assert all(retry["next"] > 1_000_000_000_000 for retry in retries)  # epoch milliseconds
    states = lifecycle(opencode_events.events(), session_id)
    recorded = recorded_lifecycle(ERRORS_TRACE, "FAIL500")
    assert (
        states[:4] == recorded[:4] == ["status:busy", "status:retry", "status:busy", "status:retry"]
    )
    assert states[-2:] == ["status:idle", "idle"]
    assert not any(state.startswith("error:") for state in states)
    (assistant,) = assistant_messages(found)  # the retries stay inside one assistant message
    assert assistant["info"]["finish"] == "stop"
    assert "error" not in assistant["info"]
    assert assistant["info"]["cost"] > 0
    decisions = [turn["decision"] for turn in model_requests(scripted_model, session_id)]
    assert decisions == ["error 503", "error 503", "text"]


def test_hanging_model_then_abort_makes_the_session_idle(
    opencode_client: httpx.Client, opencode_events: EventStream, scripted_model: ScriptedModel
) -> None:
    session_id = create_session(opencode_client)["id"]
    prompt_async(opencode_client, session_id, f"[script:hang] {nonce()}")
    deadline = time.monotonic() + SESSION_TIMEOUT_SECONDS
    while not model_requests(scripted_model, session_id):
        assert time.monotonic() < deadline, "the model never got the hanging request"
        time.sleep(0.1)
    assert opencode_client.get("/session/status").json()[session_id] == {"type": "busy"}

    response = opencode_client.post(f"/session/{session_id}/abort")
    assert response.status_code == 200
    assert response.json() is True

    found = settled_messages(opencode_client, opencode_events, session_id)
    assert lifecycle(opencode_events.events(), session_id) == recorded_lifecycle(
        ERRORS_TRACE, "SLOW one"
    )
    assert session_id not in opencode_client.get("/session/status").json()
    (assistant,) = assistant_messages(found)
    assert assistant["info"]["error"]["name"] == "MessageAbortedError"
    # the abort reached the model: OpenCode closed the hanging HTTP request
    while model_requests(scripted_model, session_id)[0]["outcome"] != "client disconnected":
        assert time.monotonic() < deadline, model_requests(scripted_model, session_id)
        time.sleep(0.1)
