"""What a wave needs from an agent's server: the port the supervisor depends on.

The real adapter is `resources.opencode` (`OpenCodeResource.client_for` gives an `OpenCodeClient`,
whose `event_stream` is a `ServerEventStream`); the unit tests drive the supervisor with an
in-memory fake of the same port. The wire types (messages, events, diffs) are the adapter's
lenient models; failures are `AgentServerError` (`AgentSessionGone` for an unknown session).
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from domain.agent import Agent
from resources.opencode.models import (
    AgentSession,
    FileDiff,
    Health,
    Message,
    ServerEvent,
    SessionStatus,
    Worktree,
)


class AgentEventStream(Protocol):
    """One event stream per server and workspace (or of every directory), shared by the sessions
    followed there."""

    connected: asyncio.Event

    async def start(self, wait_seconds: float = 10.0) -> None:
        """Open the stream; returns once connected or after `wait_seconds` (it keeps trying)."""

    async def close(self) -> None: ...

    def subscribe(
        self, session_id: str, directory: str | None = None
    ) -> asyncio.Queue[ServerEvent]:
        """The queue of that agent session's events (the same queue on every call); `directory`
        is where it works (on a stream of every directory, what its re-sync asks)."""

    def unsubscribe(self, session_id: str) -> None: ...

    def seconds_down(self) -> float:
        """How long the stream has been disconnected (0 while connected)."""


class WorktreeHost(Protocol):
    """A server that gives each tenant a git worktree of its own (`services.tenant_workspaces`)."""

    base_url: str

    async def worktrees(self) -> list[str]: ...

    async def create_worktree(self, name: str | None = None) -> Worktree: ...

    async def remove_worktree(self, directory: str) -> bool: ...


class AgentServer(WorktreeHost, Protocol):
    """A client of one agent's server; `directory` scopes a call to a workspace there."""

    async def health(self) -> Health: ...

    async def create_session(
        self,
        title: str,
        *,
        directory: str | None = None,
        permission: list[dict[str, str]] | None = None,
    ) -> AgentSession:
        """A new agent session, working in `directory` (else the server's own workspace), with
        the `permission` rules given (`domain.session_permissions`)."""

    async def dispose_instance(self, directory: str) -> bool:
        """The server's instance for `directory` let go (its memory freed)."""

    async def prompt_async(
        self,
        session_id: str,
        text: str,
        agent: str | None = None,
        model: str | None = None,
        *,
        directory: str | None = None,
    ) -> None:
        """Queue a prompt; the server answers at once and works on it in the background."""

    async def messages(self, session_id: str, *, directory: str | None = None) -> list[Message]: ...

    async def statuses(self, *, directory: str | None = None) -> dict[str, SessionStatus]:
        """The sessions of `directory` that are not idle (busy, or retrying the model)."""

    async def diff(
        self, session_id: str, message_id: str | None = None, *, directory: str | None = None
    ) -> list[FileDiff]:
        """Files changed since `message_id`."""

    async def abort(self, session_id: str, *, directory: str | None = None) -> bool: ...

    async def reply_permission(
        self, request_id: str, reply: str, message: str = "", *, directory: str | None = None
    ) -> bool:
        """Answer a permission request (`once`, `always` or `reject`)."""

    def event_stream(self, directory: str | None = None) -> AgentEventStream:
        """A new (not yet started) event stream of this server, scoped to `directory`."""

    def shared_event_stream(self) -> AgentEventStream:
        """A new (not yet started) view of the process's one stream of every directory on this
        server, shared by every wave: a server sends each event once per stream."""

    async def aclose(self) -> None: ...


class AgentServers(Protocol):
    """The factory: a client for the server of this agent."""

    def client_for(self, agent: Agent) -> AgentServer: ...
