"""Contract of the real OpenCode server (opencode-ai 1.18.33): a workspace of its own per session.

Plain httpx, a real ``opencode serve`` (one per module) in a git workspace, the real scripted model.
What these tests pin down, as observed:

- ``POST /experimental/worktree`` ``{"name"}`` makes a git worktree of the server's project on a
  new branch ``opencode/<name>`` under ``$HOME/.local/share/opencode/worktree/<projectID>/<name>``
  (the server's HOME; projectID = the repository's root commit) and answers
  ``{"name", "branch", "directory"}`` *before* the checkout is done: the worktree is ready when
  ``/global/event`` says ``worktree.ready`` for that directory. Names are slugged (lower case,
  ``[a-z0-9-]``), a taken name gets a suffix, no name gets a generated one.
  ``DELETE /experimental/worktree`` ``{"directory"}`` removes the directory and the branch,
  disposes the server's instance of that directory, and answers ``true`` even for an unknown
  directory. ``POST /experimental/worktree/reset`` discards every
  change (branch back to the project's default branch, untracked files removed).
- ``POST /session?directory=<d>`` (or the header ``x-opencode-directory: <d>``) makes a session
  that runs in ``<d>``. The routes of one session (``GET /session/{id}``, ``/message``, ``/diff``,
  ``prompt_async``, ``abort``) find it by id whatever the directory; the server-wide routes do
  not: ``GET /session/status``, ``GET /permission``, ``POST /permission/{id}/reply`` and
  ``GET /event`` only see the directory of the request (the server's own workspace without
  one). ``GET /global/event`` carries every directory's events in
  ``{"directory", "project", "payload"}`` envelopes (server events: no directory; project
  events: directory ``"global"``).
- A session's messages and diff outlive its worktree, once the diff is computed: the server
  computes a user message's diff in the background after each step, the last time just after
  ``session.idle`` (a ``message.updated`` of that message with ``summary.diffs``); removed
  before any of those is done, the worktree takes the diff with it (empty for good).
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from standins.opencode_server import OpenCodeServer
from standins.scripted_model import ScriptedModel
from tests.integration.opencode.event_stream import Event, EventStream, payload_of, session_of
from tests.integration.opencode.support import settled_diff

pytestmark = pytest.mark.timeout(120)

SESSION_TIMEOUT_SECONDS = 45.0
READY_TIMEOUT_SECONDS = 30.0
ASK_BEFORE_EDIT = [{"permission": "edit", "pattern": "*", "action": "ask"}]


# --- helpers ----------------------------------------------------------------------------------


def nonce() -> str:
    return uuid.uuid4().hex[:8]


def git(directory: Path | str, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=directory, capture_output=True, text=True, check=True
    ).stdout.strip()


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def create_worktree(
    client: httpx.Client, global_events: EventStream, name: str | None = None
) -> dict[str, Any]:
    """A worktree once the server says it is ready."""
    worktree = ok(client.post("/experimental/worktree", json={"name": name} if name else {}))
    wait_global(global_events, worktree["directory"], "worktree.ready", READY_TIMEOUT_SECONDS)
    return worktree


def remove_worktree(client: httpx.Client, directory: str) -> None:
    assert ok(client.request("DELETE", "/experimental/worktree", json={"directory": directory}))


def wait_global(
    global_events: EventStream, directory: str, event_type: str, timeout: float = 30.0
) -> Event:
    return global_events.wait_for(
        lambda event: (
            event.get("directory") == directory and event["payload"]["type"] == event_type
        ),
        timeout,
        f"{event_type} in {directory}",
    )


def wait_session(
    global_events: EventStream, session_id: str, event_type: str, timeout: float = 30.0
) -> Event:
    return global_events.wait_for_session(session_id, event_type, timeout)


def create_session(
    client: httpx.Client, directory: str | None = None, **body: Any
) -> dict[str, Any]:
    params = {"directory": directory} if directory else None
    return ok(client.post("/session", params=params, json=body))


def prompt_async(
    client: httpx.Client, session_id: str, text: str, directory: str | None = None
) -> None:
    params = {"directory": directory} if directory else None
    body = {"parts": [{"type": "text", "text": text}]}
    ok(client.post(f"/session/{session_id}/prompt_async", params=params, json=body), 204)


def statuses(client: httpx.Client, directory: str | None = None) -> dict[str, Any]:
    return ok(client.get("/session/status", params={"directory": directory} if directory else None))


def settled_messages(client: httpx.Client, session_id: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while True:
        found = ok(client.get(f"/session/{session_id}/message"))
        assistants = [m for m in found if m["info"]["role"] == "assistant"]
        if assistants and all(m["info"]["time"].get("completed") for m in assistants):
            return found
        assert time.monotonic() < deadline, f"assistant messages never completed: {found}"
        time.sleep(0.1)


def wait_for_model(model: ScriptedModel, session_id: str) -> None:
    deadline = time.monotonic() + SESSION_TIMEOUT_SECONDS
    while not any(
        request["headers"].get("x-session-id") == session_id and request["script"] != "title"
        for request in model.requests()
    ):
        assert time.monotonic() < deadline, "the model never got the session's request"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def worktree(opencode_client: httpx.Client, opencode_global_events: EventStream) -> dict[str, Any]:
    """One worktree for the session tests of this module (removed with the server)."""
    return create_worktree(opencode_client, opencode_global_events, f"contract-{nonce()}")


@pytest.fixture
def fresh_worktree(
    opencode_client: httpx.Client, opencode_global_events: EventStream
) -> Iterator[Path]:
    """A new ready worktree (its directory) with an untracked file; removed after the test."""
    worktree = create_worktree(opencode_client, opencode_global_events, f"fresh-{nonce()}")
    directory = Path(worktree["directory"])
    (directory / "untracked.txt").write_text("uncommitted\n")
    yield directory
    remove_worktree(opencode_client, str(directory))


# --- worktrees --------------------------------------------------------------------------------


def test_post_worktree_makes_a_git_worktree_on_a_new_branch(
    opencode_client: httpx.Client,
    opencode_global_events: EventStream,
    opencode_server: OpenCodeServer,
) -> None:
    name = f"wt-{nonce()}"
    workspace = opencode_server.workspace
    assert workspace is not None and opencode_server.home is not None
    project_id = git(workspace, "rev-list", "--max-parents=0", "HEAD")

    answer = ok(opencode_client.post("/experimental/worktree", json={"name": name}))
    directory = opencode_server.home / ".local/share/opencode/worktree" / project_id / name
    assert answer == {"name": name, "branch": f"opencode/{name}", "directory": str(directory)}

    ready = wait_global(opencode_global_events, str(directory), "worktree.ready")
    assert ready["project"] == project_id
    assert ready["payload"]["properties"] == {"name": name, "branch": f"opencode/{name}"}
    assert (directory / "README.md").read_text() == (workspace / "README.md").read_text()
    assert git(directory, "rev-parse", "HEAD") == git(workspace, "rev-parse", "HEAD")
    assert git(directory, "branch", "--show-current") == f"opencode/{name}"
    assert f"worktree {directory}" in git(workspace, "worktree", "list", "--porcelain")
    assert str(directory) in ok(opencode_client.get("/experimental/worktree"))
    remove_worktree(opencode_client, str(directory))


def test_names_are_slugged_a_taken_one_gets_a_suffix_and_none_a_generated_one(
    opencode_client: httpx.Client, opencode_global_events: EventStream
) -> None:
    name = f"twice-{nonce()}"
    first = create_worktree(opencode_client, opencode_global_events, name)
    second = create_worktree(opencode_client, opencode_global_events, name)
    unnamed = create_worktree(opencode_client, opencode_global_events)
    assert second["name"].startswith(f"{name}-")
    assert second["directory"] != first["directory"]
    assert unnamed["name"]
    assert unnamed["branch"] == f"opencode/{unnamed['name']}"
    tag = nonce()
    slugged = create_worktree(opencode_client, opencode_global_events, f"IND-{tag} x/Y")
    assert slugged["name"] == f"ind-{tag}-x-y"  # lower case, anything else becomes "-"
    for worktree in (first, second, unnamed, slugged):
        remove_worktree(opencode_client, worktree["directory"])


def test_delete_worktree_removes_directory_and_branch_and_is_idempotent(
    opencode_client: httpx.Client, opencode_server: OpenCodeServer, fresh_worktree: Path
) -> None:
    branch = git(fresh_worktree, "branch", "--show-current")
    response = opencode_client.request(
        "DELETE", "/experimental/worktree", json={"directory": str(fresh_worktree)}
    )
    assert ok(response) is True
    assert not fresh_worktree.exists()
    assert branch not in git(opencode_server.workspace, "branch", "--list")
    assert str(fresh_worktree) not in git(opencode_server.workspace, "worktree", "list")
    assert str(fresh_worktree) not in ok(opencode_client.get("/experimental/worktree"))
    # unknown or already removed: still true
    again = opencode_client.request(
        "DELETE", "/experimental/worktree", json={"directory": str(fresh_worktree)}
    )
    assert ok(again) is True


def test_reset_worktree_discards_every_change(
    opencode_client: httpx.Client, opencode_server: OpenCodeServer, fresh_worktree: Path
) -> None:
    (fresh_worktree / "README.md").write_text("changed\n")
    response = opencode_client.post(
        "/experimental/worktree/reset", json={"directory": str(fresh_worktree)}
    )
    assert ok(response) is True
    assert not (fresh_worktree / "untracked.txt").exists()
    assert git(fresh_worktree, "status", "--porcelain") == ""
    main_head = git(opencode_server.workspace, "rev-parse", "HEAD")
    assert git(fresh_worktree, "rev-parse", "HEAD") == main_head


# --- sessions in a worktree -------------------------------------------------------------------


def test_a_session_created_with_a_directory_works_there_and_only_there(
    opencode_client: httpx.Client,
    opencode_events: EventStream,
    opencode_global_events: EventStream,
    opencode_server: OpenCodeServer,
    worktree: dict[str, Any],
) -> None:
    directory = worktree["directory"]
    scoped = EventStream(
        opencode_server.url, auth=opencode_server.auth, params={"directory": directory}
    ).start()
    try:
        session = create_session(opencode_client, directory, title="in a worktree")
        assert session["directory"] == directory
        session_id = session["id"]
        path = f"tenant-{nonce()}.md"
        prompt_async(
            opencode_client,
            session_id,
            f'[script:write path={path} content="mine\\n" reply="Done."]',
            directory,
        )
        wait_session(opencode_global_events, session_id, "session.idle", SESSION_TIMEOUT_SECONDS)
        scoped.wait_for_session(session_id, "session.idle", 5)
    finally:
        scoped.close()

    # the file is in the worktree, not in the server's workspace
    assert (Path(directory) / path).read_text() == "mine\n"
    assert not (opencode_server.workspace / path).exists()
    assert git(opencode_server.workspace, "status", "--porcelain") == ""
    assert git(directory, "status", "--porcelain") == f"?? {path}"

    # events: none on the server's /event, all on /event?directory=, all on /global/event
    assert opencode_events.events(session_id) == []
    on_global = [
        event for event in opencode_global_events.events() if session_of(event) == session_id
    ]
    assert {event["directory"] for event in on_global} == {directory}
    assert {event["project"] for event in on_global} == {session["projectID"]}
    assert set(on_global[0]) == {"directory", "project", "payload"}
    assert [payload_of(e) for e in on_global if "properties" in payload_of(e)] == [
        e for e in scoped.events(session_id)
    ]
    statuses_seen = [
        payload_of(e)["properties"]["status"]["type"]
        for e in on_global
        if payload_of(e)["type"] == "session.status"
    ]
    assert statuses_seen[0] == "busy"
    assert statuses_seen[-1] == "idle"

    # the session's own routes find it without the directory
    assert ok(opencode_client.get(f"/session/{session_id}"))["directory"] == directory
    found = settled_messages(opencode_client, session_id)
    assert found[-1]["info"]["path"] == {"cwd": directory, "root": directory}
    user_id = found[0]["info"]["id"]
    diff = settled_diff(opencode_client, session_id, user_id)
    assert [entry["file"] for entry in diff] == [path]


def test_the_directory_header_places_a_session_like_the_query_parameter(
    opencode_client: httpx.Client, worktree: dict[str, Any]
) -> None:
    response = opencode_client.post(
        "/session", headers={"x-opencode-directory": worktree["directory"]}, json={}
    )
    assert ok(response)["directory"] == worktree["directory"]


def test_status_is_per_directory_and_abort_finds_the_session_anywhere(
    opencode_client: httpx.Client,
    opencode_global_events: EventStream,
    scripted_model: ScriptedModel,
    worktree: dict[str, Any],
) -> None:
    directory = worktree["directory"]
    session_id = create_session(opencode_client, directory)["id"]
    prompt_async(opencode_client, session_id, f"[script:hang] {nonce()}", directory)
    wait_for_model(scripted_model, session_id)

    assert session_id not in statuses(opencode_client)
    assert statuses(opencode_client, directory)[session_id] == {"type": "busy"}
    by_header = opencode_client.get("/session/status", headers={"x-opencode-directory": directory})
    assert ok(by_header)[session_id] == {"type": "busy"}

    assert ok(opencode_client.post(f"/session/{session_id}/abort")) is True  # no directory
    wait_session(opencode_global_events, session_id, "session.idle")
    assert session_id not in statuses(opencode_client, directory)
    assistant = settled_messages(opencode_client, session_id)[-1]
    assert assistant["info"]["error"]["name"] == "MessageAbortedError"


def test_permission_requests_are_per_directory(
    opencode_client: httpx.Client,
    opencode_global_events: EventStream,
    worktree: dict[str, Any],
) -> None:
    directory = worktree["directory"]
    session_id = create_session(opencode_client, directory, permission=ASK_BEFORE_EDIT)["id"]
    path = f"asked-{nonce()}.md"
    prompt_async(
        opencode_client,
        session_id,
        f'[script:write path={path} content="ok" reply="Done."]',
        directory,
    )
    asked = wait_session(
        opencode_global_events, session_id, "permission.asked", SESSION_TIMEOUT_SECONDS
    )
    assert asked["directory"] == directory
    request_id = asked["payload"]["properties"]["id"]

    assert request_id not in [p["id"] for p in ok(opencode_client.get("/permission"))]
    listed = ok(opencode_client.get("/permission", params={"directory": directory}))
    assert request_id in [p["id"] for p in listed]

    elsewhere = opencode_client.post(f"/permission/{request_id}/reply", json={"reply": "once"})
    assert elsewhere.status_code == 404
    assert elsewhere.json()["_tag"] == "PermissionNotFoundError"
    assert statuses(opencode_client, directory)[session_id] == {"type": "busy"}

    reply = opencode_client.post(
        f"/permission/{request_id}/reply", params={"directory": directory}, json={"reply": "once"}
    )
    assert ok(reply) is True
    wait_session(opencode_global_events, session_id, "session.idle", SESSION_TIMEOUT_SECONDS)
    assert (Path(directory) / path).read_text() == "ok"


def test_global_event_envelopes_of_the_server_and_the_project(
    opencode_global_events: EventStream, opencode_server: OpenCodeServer
) -> None:
    connected = opencode_global_events.events()[0]
    assert connected == {"payload": connected["payload"]}  # no directory, no project
    assert connected["payload"]["type"] == "server.connected"
    project = [
        event
        for event in opencode_global_events.events()
        if event["payload"]["type"] == "project.updated"
    ]
    assert project
    assert {event["directory"] for event in project} == {"global"}
    assert project[-1]["payload"]["properties"]["worktree"] == str(opencode_server.workspace)


def test_messages_and_diff_outlive_the_worktree(
    opencode_client: httpx.Client, opencode_global_events: EventStream
) -> None:
    worktree = create_worktree(opencode_client, opencode_global_events, f"brief-{nonce()}")
    directory = worktree["directory"]
    session_id = create_session(opencode_client, directory)["id"]
    path = f"kept-{nonce()}.md"
    prompt_async(
        opencode_client,
        session_id,
        f'[script:write path={path} content="kept" reply="Done."]',
        directory,
    )
    wait_session(opencode_global_events, session_id, "session.idle", SESSION_TIMEOUT_SECONDS)
    user_id = settled_messages(opencode_client, session_id)[0]["info"]["id"]
    computed = opencode_global_events.wait_for_message_diff(session_id, user_id)
    assert [entry["file"] for entry in computed] == [path]

    remove_worktree(opencode_client, directory)
    wait_global(opencode_global_events, directory, "server.instance.disposed")
    assert not Path(directory).exists()
    assert len(settled_messages(opencode_client, session_id)) == 3
    # stored, not computed again: read once, no settling
    diff = ok(opencode_client.get(f"/session/{session_id}/diff", params={"messageID": user_id}))
    assert [(entry["file"], entry["status"]) for entry in diff] == [(path, "added")]
    assert "+kept" in diff[0]["patch"]
