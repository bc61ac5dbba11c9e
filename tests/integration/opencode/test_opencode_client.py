"""`OpenCodeClient` (resources.opencode.client) against the real OpenCode server (1.18.33).

No mocks: a real ``opencode serve`` process, the real scripted model, our client's real HTTP
(with its one shared SSL context and its retry policy). The calls a supervisor makes, end to end:
create a session, queue a prompt, watch the status, read the messages and the diff, abort; and
the same with each session in a git worktree of its own (`create_worktree`, the `directory`
argument, `global_events`, `remove_worktree`).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from resources.opencode.client import OpenCodeClient
from resources.opencode.errors import AgentSessionGone
from resources.opencode.models import GlobalEvent, Message, Worktree
from standins.opencode_server import OPENCODE_VERSION, OpenCodeServer
from standins.scripted_model import ScriptedModel

pytestmark = pytest.mark.timeout(120)

SESSION_TIMEOUT_SECONDS = 45.0
OPENCODE_SHARED_SERVER = True  # read by the opencode_server fixture: one server for the package
ASK_BEFORE_EDIT = [{"permission": "edit", "pattern": "*", "action": "ask"}]
T = TypeVar("T")


def nonce() -> str:
    return uuid.uuid4().hex[:8]


def with_client(server: OpenCodeServer, work: Callable[[OpenCodeClient], Awaitable[T]]) -> T:
    async def run() -> T:
        password = server.auth[1] if server.auth else None
        async with OpenCodeClient(server.url, password=password) as client:
            return await work(client)

    return asyncio.run(run())


async def settled(
    client: OpenCodeClient, session_id: str, directory: str | None = None
) -> list[Message]:
    """The session's messages once it is idle and every assistant message is completed."""
    deadline = time.monotonic() + SESSION_TIMEOUT_SECONDS
    while True:
        statuses = await client.statuses(directory=directory)
        found = await client.messages(session_id, directory=directory)
        assistants = [m for m in found if m.info.role == "assistant"]
        if session_id not in statuses and assistants and all(m.info.completed for m in assistants):
            return found
        assert time.monotonic() < deadline, f"session {session_id} never settled: {found}"
        await asyncio.sleep(0.2)


async def settled_diff(
    client: OpenCodeClient, session_id: str, message_id: str, directory: str | None = None
) -> list[str]:
    """The changed files; the diff may lag the session's idle by a fraction of a second."""
    deadline = time.monotonic() + 5
    while True:
        diff = await client.diff(session_id, message_id, directory=directory)
        if diff or time.monotonic() > deadline:
            return [entry.file for entry in diff]
        await asyncio.sleep(0.1)


def test_health(opencode_server: OpenCodeServer) -> None:
    health = with_client(opencode_server, lambda client: client.health())
    assert health.healthy
    assert health.version == OPENCODE_VERSION


def test_a_prompt_runs_end_to_end_through_the_client(opencode_server: OpenCodeServer) -> None:
    path = f"client-{nonce()}.md"

    async def work(client: OpenCodeClient) -> tuple[str, list[Message], list[str]]:
        session = await client.create_session("client contract")
        await client.prompt_async(
            session.id, f'[script:write path={path} content="hi\\n" reply="Written."]'
        )
        found = await settled(client, session.id)
        user = next(m for m in found if m.info.role == "user")
        return session.directory, found, await settled_diff(client, session.id, user.info.id)

    directory, found, changed = with_client(opencode_server, work)
    assert directory == str(opencode_server.workspace)
    assert found[-1].text == "Written."
    assert path in changed
    assert (opencode_server.workspace / path).read_text() == "hi\n"


def test_an_unknown_session_is_gone(opencode_server: OpenCodeServer) -> None:
    with pytest.raises(AgentSessionGone):
        with_client(opencode_server, lambda client: client.messages("ses_doesnotexist"))


# --- a worktree per session -------------------------------------------------------------------


def test_two_sessions_in_their_own_worktrees_do_not_see_each_other(
    opencode_server: OpenCodeServer,
) -> None:
    path = f"shared-name-{nonce()}.md"

    async def run_in(client: OpenCodeClient, worktree: Worktree, content: str) -> list[str]:
        session = await client.create_session(content, directory=worktree.directory)
        assert session.directory == worktree.directory
        assert (await client.get_session(session.id)).directory == worktree.directory
        text = f'[script:write path={path} content="{content}" reply="Done {content}."]'
        await client.prompt_async(session.id, text, directory=worktree.directory)
        found = await settled(client, session.id, worktree.directory)
        assert found[-1].text == f"Done {content}."
        user = next(m for m in found if m.info.role == "user")
        return await settled_diff(client, session.id, user.info.id, worktree.directory)

    async def work(client: OpenCodeClient) -> tuple[list[Worktree], list[list[str]], list[str]]:
        worktrees = list(
            await asyncio.gather(
                client.create_worktree(f"tenant-a-{nonce()}"),
                client.create_worktree(f"tenant-b-{nonce()}"),
            )
        )
        for worktree in worktrees:  # ready: checked out
            assert (Path(worktree.directory) / "README.md").exists()
        assert {w.directory for w in worktrees} <= set(await client.worktrees())
        diffs = list(
            await asyncio.gather(
                run_in(client, worktrees[0], "alpha"), run_in(client, worktrees[1], "beta")
            )
        )
        for worktree in worktrees:
            assert Path(worktree.directory, path).exists()
            assert await client.remove_worktree(worktree.directory) is True
        assert await client.remove_worktree(worktrees[0].directory) is True  # idempotent
        return worktrees, diffs, await client.worktrees()

    worktrees, diffs, left = with_client(opencode_server, work)
    assert diffs == [[path], [path]]
    assert not (opencode_server.workspace / path).exists()
    for worktree in worktrees:
        assert worktree.branch == f"opencode/{worktree.name}"
        assert not Path(worktree.directory).exists()
        assert worktree.directory not in left


async def model_got_request(model: ScriptedModel, session_id: str) -> None:
    deadline = time.monotonic() + SESSION_TIMEOUT_SECONDS
    while not any(
        request["headers"].get("x-session-id") == session_id and request["script"] != "title"
        for request in model.requests()
    ):
        assert time.monotonic() < deadline, "the model never got the session's request"
        await asyncio.sleep(0.1)


def test_status_abort_and_permission_reply_in_a_worktree(
    opencode_server: OpenCodeServer, scripted_model: ScriptedModel
) -> None:
    path = f"asked-{nonce()}.md"

    async def wait_for(
        events: AsyncIterator[GlobalEvent], session_id: str, event_type: str
    ) -> GlobalEvent:
        async with asyncio.timeout(SESSION_TIMEOUT_SECONDS):
            async for event in events:
                if event.session_id == session_id and event.type == event_type:
                    return event
        raise AssertionError(f"the stream ended before {event_type} of {session_id}")

    async def work(client: OpenCodeClient) -> tuple[Worktree, list[Message]]:
        worktree = await client.create_worktree(f"guarded-{nonce()}")
        directory = worktree.directory
        async with client.global_events() as events:
            hanging = await client.create_session("hang", directory=directory)
            await client.prompt_async(hanging.id, f"[script:hang] {nonce()}", directory=directory)
            busy = await wait_for(events, hanging.id, "session.status")
            assert busy.directory == directory
            assert busy.payload.status is not None and busy.payload.status.type == "busy"
            await model_got_request(scripted_model, hanging.id)
            assert hanging.id not in await client.statuses()
            assert (await client.statuses(directory=directory))[hanging.id].type == "busy"
            assert await client.abort(hanging.id, directory=directory) is True
            await wait_for(events, hanging.id, "session.idle")

            asking = await client.create_session(
                "ask", directory=directory, permission=ASK_BEFORE_EDIT
            )
            text = f'[script:write path={path} content="ok" reply="Done."]'
            await client.prompt_async(asking.id, text, directory=directory)
            asked = await wait_for(events, asking.id, "permission.asked")
            request_id = asked.payload.properties["id"]
            assert await client.reply_permission(request_id, "once", directory=directory)
            await wait_for(events, asking.id, "session.idle")
        aborted = await settled(client, hanging.id, directory)
        await client.remove_worktree(directory)
        return worktree, aborted

    worktree, aborted = with_client(opencode_server, work)
    assert aborted[-1].info.error is not None
    assert aborted[-1].info.error["name"] == "MessageAbortedError"
    assert not Path(worktree.directory).exists()
