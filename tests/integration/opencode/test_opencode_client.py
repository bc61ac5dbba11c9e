"""`OpenCodeClient` (resources.opencode.client) against the real OpenCode server (1.18.33).

No mocks: a real ``opencode serve`` process, the real scripted model, our client's real HTTP
(with its one shared SSL context and its retry policy). The calls a supervisor makes, end to end:
create a session, queue a prompt, watch the status, read the messages and the diff, abort.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from resources.opencode.client import OpenCodeClient
from resources.opencode.errors import AgentSessionGone
from resources.opencode.models import Message
from standins.opencode_server import OPENCODE_VERSION, OpenCodeServer

pytestmark = pytest.mark.timeout(120)

SESSION_TIMEOUT_SECONDS = 45.0
T = TypeVar("T")


def nonce() -> str:
    return uuid.uuid4().hex[:8]


def with_client(server: OpenCodeServer, work: Callable[[OpenCodeClient], Awaitable[T]]) -> T:
    async def run() -> T:
        password = server.auth[1] if server.auth else None
        async with OpenCodeClient(server.url, password=password) as client:
            return await work(client)

    return asyncio.run(run())


async def settled(client: OpenCodeClient, session_id: str) -> list[Message]:
    """The session's messages once it is idle and every assistant message is completed."""
    deadline = time.monotonic() + SESSION_TIMEOUT_SECONDS
    while True:
        statuses = await client.statuses()
        found = await client.messages(session_id)
        assistants = [m for m in found if m.info.role == "assistant"]
        if session_id not in statuses and assistants and all(m.info.completed for m in assistants):
            return found
        assert time.monotonic() < deadline, f"session {session_id} never settled: {found}"
        await asyncio.sleep(0.2)


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
        diff = await client.diff(session.id, user.info.id)
        return session.directory, found, [entry.file for entry in diff]

    directory, found, changed = with_client(opencode_server, work)
    assert directory == str(opencode_server.workspace)
    assert found[-1].text == "Written."
    assert path in changed
    assert (opencode_server.workspace / path).read_text() == "hi\n"


def test_an_unknown_session_is_gone(opencode_server: OpenCodeServer) -> None:
    with pytest.raises(AgentSessionGone):
        with_client(opencode_server, lambda client: client.messages("ses_doesnotexist"))
