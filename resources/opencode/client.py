"""An async client of the OpenCode server's documented V1 routes (opencode-ai 1.18.33).

Explicit timeouts on every call; idempotent calls retry a bounded number of times on transport
errors, 429 and 5xx. Calls that are not idempotent (`create_session`, `prompt_async`) retry only
the transport errors that mean the request never reached the server (`NEVER_SENT`: connect
error, connect timeout, no free pooled connection); a failure after sending (read timeout, server
disconnected) or an error status is reported at once, since the server may have acted on it.
Expected absence (an unknown session) raises `AgentSessionGone`.
Every client shares one SSL context per process (`shared_ssl_context`).

A workspace per session: `create_worktree` makes a git worktree (a directory on a branch of its
own) and returns once it is checked out; a session created with `directory=` runs there. Pass the
same `directory` to the calls of that session: the server-wide routes (`statuses`,
`reply_permission`) only see the directory they are asked about, and the session's own routes
accept it. `global_events` follows every directory's events; `remove_worktree` cleans up.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json as jsonlib
import logging
import ssl
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import httpx
from httpx_sse import EventSource, SSEError, aconnect_sse

from resources.opencode.errors import AgentServerError, AgentSessionGone
from resources.opencode.models import (
    AgentSession,
    FileDiff,
    GlobalEvent,
    Health,
    Message,
    SessionStatus,
    Worktree,
)

if TYPE_CHECKING:
    from resources.opencode.event_stream import ServerEventStream
    from resources.opencode.shared_event_stream import SharedStreamView

logger = logging.getLogger(__name__)

BASIC_AUTH_USER = "opencode"
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=3.0)
DEFAULT_RETRY_BACKOFF_SECONDS = 0.2
# The request was never sent: retrying it cannot make the server act twice.
NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# The server sends `server.heartbeat` every few seconds: silence this long means a dead stream.
EVENT_READ_TIMEOUT_SECONDS = 30.0
WORKTREE_READY_TIMEOUT_SECONDS = 60.0
# The calls sent once (a create, a prompt) answer late while the server makes the instance for a
# new directory and serves the first prompts of others (a create: >10 s with 20 starting at once;
# a prompt: >10 s with ~330 sessions in one instance); giving up then fails the session's
# attempt, which costs it a retry's back-off and the whole start again, while the server may
# well have acted on it.
SENT_ONCE_READ_TIMEOUT_SECONDS = 60.0


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """The process's one SSL context for OpenCode clients, built on first use.

    httpx builds a new one per client (~20 ms of CPU: the CA bundle is loaded each time); this is
    the same context httpx would build (`SSL_CERT_FILE`, else `SSL_CERT_DIR`, else certifi), once.
    Pass it as `verify=` to every `httpx.AsyncClient` talking to an OpenCode server.
    """
    return httpx.create_ssl_context(verify=True, trust_env=True)


def split_model(model: str | None) -> dict[str, str] | None:
    """`provider/model` -> the server's {providerID, modelID}; None leaves the server default."""
    if not model:
        return None
    provider, _, model_id = model.partition("/")
    return {"providerID": provider, "modelID": model_id}


class OpenCodeClient:
    def __init__(
        self,
        base_url: str,
        password: str | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        attempts: int = 3,
        retry_backoff: float = DEFAULT_RETRY_BACKOFF_SECONDS,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """`attempts` bounds every retry; the waits are `retry_backoff` * 1, 2, 4, ...
        `transport` replaces the network (tests)."""
        self.base_url = base_url.rstrip("/")
        self._password = password
        self._timeout = timeout
        self._auth = httpx.BasicAuth(BASIC_AUTH_USER, password) if password else None
        self._attempts = max(1, attempts)
        self._retry_backoff = retry_backoff
        self._transport = transport
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            auth=self._auth,
            timeout=timeout,
            verify=shared_ssl_context(),
            transport=transport,
        )

    @property
    def auth(self) -> httpx.BasicAuth | None:
        return self._auth

    @property
    def password(self) -> str | None:
        return self._password

    @property
    def transport(self) -> httpx.AsyncBaseTransport | None:
        return self._transport

    def copy(self) -> OpenCodeClient:
        """A client of the same server, as the same caller, with connections of its own (one
        for another thread's event loop)."""
        return OpenCodeClient(
            self.base_url,
            self._password,
            self._timeout,
            self._attempts,
            self._retry_backoff,
            self._transport,
        )

    async def __aenter__(self) -> OpenCodeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        idempotent: bool = True,
        session_id: str | None = None,
        directory: str | None = None,
        read_timeout: float | None = None,
    ) -> httpx.Response:
        """One call, retried up to `attempts` times: idempotent calls on any transport error,
        429 and 5xx; the others only when the request was never sent (`NEVER_SENT`).
        `directory` scopes the call to that directory (the server's `directory` parameter);
        `read_timeout` replaces the client's wait for the answer."""
        timeout: Any = httpx.USE_CLIENT_DEFAULT
        if read_timeout is not None:
            configured = self._http.timeout
            timeout = httpx.Timeout(
                connect=configured.connect,
                read=max(read_timeout, configured.read or 0.0),
                write=configured.write,
                pool=configured.pool,
            )
        if directory:
            params = {**(params or {}), "directory": directory}
        for attempt in range(1, self._attempts + 1):
            last = attempt == self._attempts
            try:
                response = await self._http.request(
                    method, path, json=json, params=params, timeout=timeout
                )
            except httpx.TransportError as error:
                if last or not (idempotent or isinstance(error, NEVER_SENT)):
                    raise AgentServerError(self.base_url, f"{method} {path}: {error!r}") from error
            else:
                if response.status_code == 404 and session_id:
                    raise AgentSessionGone(self.base_url, f"session {session_id} not found", 404)
                if last or not idempotent or response.status_code not in RETRYABLE_STATUS:
                    if response.is_error:
                        raise AgentServerError(
                            self.base_url,
                            f"{method} {path}: {response.text[:300]}",
                            response.status_code,
                        )
                    return response
            await asyncio.sleep(self._retry_backoff * 2 ** (attempt - 1))
        raise AssertionError("unreachable")

    async def health(self) -> Health:
        response = await self._request("GET", "/global/health")
        return Health.model_validate(response.json())

    # --- sessions ---------------------------------------------------------------------------

    async def create_session(
        self,
        title: str,
        parent_id: str | None = None,
        *,
        directory: str | None = None,
        permission: list[dict[str, str]] | None = None,
    ) -> AgentSession:
        """A new session; it works in `directory` (a worktree), else in the server's workspace.
        `permission`: rules such as {"permission": "edit", "pattern": "*", "action": "ask"}."""
        body: dict[str, Any] = {"title": title}
        if parent_id:
            body["parentID"] = parent_id
        if permission:
            body["permission"] = permission
        response = await self._request(
            "POST",
            "/session",
            json=body,
            idempotent=False,
            directory=directory,
            read_timeout=SENT_ONCE_READ_TIMEOUT_SECONDS,
        )
        return AgentSession.model_validate(response.json())

    async def get_session(self, session_id: str, *, directory: str | None = None) -> AgentSession:
        """The session (found by id in any directory); `.directory` is where it works."""
        response = await self._request(
            "GET", f"/session/{session_id}", session_id=session_id, directory=directory
        )
        return AgentSession.model_validate(response.json())

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
        body: dict[str, Any] = {"parts": [{"type": "text", "text": text}]}
        if agent:
            body["agent"] = agent
        if (parsed := split_model(model)) is not None:
            body["model"] = parsed
        await self._request(
            "POST",
            f"/session/{session_id}/prompt_async",
            json=body,
            idempotent=False,
            session_id=session_id,
            directory=directory,
            read_timeout=SENT_ONCE_READ_TIMEOUT_SECONDS,
        )

    async def prompt(
        self,
        session_id: str,
        text: str,
        *,
        directory: str | None = None,
        tools: dict[str, bool] | None = None,
        read_timeout: float | None = None,
    ) -> Message:
        """Send a prompt and wait for the server's final answer to it (`POST .../message`).
        `tools`: tools allowed (true) or denied (false) for this prompt; "*" names them all."""
        body: dict[str, Any] = {"parts": [{"type": "text", "text": text}]}
        if tools is not None:
            body["tools"] = tools
        response = await self._request(
            "POST",
            f"/session/{session_id}/message",
            json=body,
            idempotent=False,
            session_id=session_id,
            directory=directory,
            read_timeout=read_timeout,
        )
        return Message.model_validate(response.json())

    async def delete_session(self, session_id: str, *, directory: str | None = None) -> bool:
        response = await self._request(
            "DELETE", f"/session/{session_id}", session_id=session_id, directory=directory
        )
        return bool(response.json())

    async def statuses(self, *, directory: str | None = None) -> dict[str, SessionStatus]:
        """Status of the non-idle sessions of ONE directory (default: the server's workspace);
        a session missing from it is idle, or works in another directory."""
        response = await self._request("GET", "/session/status", directory=directory)
        return {key: SessionStatus.model_validate(value) for key, value in response.json().items()}

    async def abort(self, session_id: str, *, directory: str | None = None) -> bool:
        response = await self._request(
            "POST", f"/session/{session_id}/abort", session_id=session_id, directory=directory
        )
        return bool(response.json())

    async def messages(self, session_id: str, *, directory: str | None = None) -> list[Message]:
        response = await self._request(
            "GET", f"/session/{session_id}/message", session_id=session_id, directory=directory
        )
        return [Message.model_validate(item) for item in response.json()]

    async def diff(
        self, session_id: str, message_id: str | None = None, *, directory: str | None = None
    ) -> list[FileDiff]:
        """Files changed since `message_id` (the server returns nothing without one)."""
        params = {"messageID": message_id} if message_id else None
        response = await self._request(
            "GET",
            f"/session/{session_id}/diff",
            params=params,
            session_id=session_id,
            directory=directory,
        )
        return [FileDiff.model_validate(item) for item in response.json()]

    async def reply_permission(
        self, request_id: str, reply: str, message: str = "", *, directory: str | None = None
    ) -> bool:
        """Answer a permission request; `directory` must be the asking session's (the server
        answers 404 for a request of another directory)."""
        body: dict[str, Any] = {"reply": reply}
        if message:
            body["message"] = message
        response = await self._request(
            "POST", f"/permission/{request_id}/reply", json=body, directory=directory
        )
        return bool(response.json())

    def event_stream(self, directory: str | None = None) -> ServerEventStream:
        """A new, not yet started, `GET /event` stream of this server, scoped to `directory`
        (`services.supervision.agent_server.AgentServer`)."""
        from resources.opencode.event_stream import ServerEventStream  # it builds on this client

        return ServerEventStream(self, directory, transport=self._transport)

    def global_event_stream(
        self, on_connection: Callable[[bool], None] | None = None
    ) -> ServerEventStream:
        """A new, not yet started, `GET /global/event` stream: every directory's sessions (each
        subscribed with the directory it works in)."""
        from resources.opencode.event_stream import ServerEventStream

        return ServerEventStream(
            self, every_directory=True, transport=self._transport, on_connection=on_connection
        )

    def shared_event_stream(self) -> SharedStreamView:
        """A view, not yet started, of this process's one `GET /global/event` stream of this
        server, shared with every other caller's (`shared_event_stream`): it gets the events of
        the sessions it subscribes, and no others."""
        from resources.opencode.shared_event_stream import shared_view

        return shared_view(self)

    async def update_global_config(self, patch: dict[str, Any]) -> None:
        """Merge `patch` into the server's global configuration (a provider, a model); the
        server applies it to the sessions that start afterwards."""
        await self._request("PATCH", "/global/config", json=patch, idempotent=True)

    async def dispose_instance(self, directory: str) -> bool:
        """`POST /instance/dispose`: the server's instance for `directory` released (each
        directory asked about keeps one, ~60 MB, until disposed of)."""
        response = await self._request("POST", "/instance/dispose", directory=directory)
        return bool(response.json())

    # --- worktrees --------------------------------------------------------------------------

    async def create_worktree(
        self, name: str | None = None, *, ready_timeout: float = WORKTREE_READY_TIMEOUT_SECONDS
    ) -> Worktree:
        """A new git worktree of the server's project, checked out and ready for sessions.

        The server answers before the checkout is done and announces `worktree.ready` (or
        `worktree.failed`) on `/global/event`; this follows that stream from before asking.
        `name` is slugged by the server (lower case, `[a-z0-9-]`; a taken name gets a suffix).
        A worktree that fails or is not ready within `ready_timeout` is removed again and
        `AgentServerError` raised.
        """
        body = {"name": name} if name else {}
        worktree: Worktree | None = None
        try:
            async with asyncio.timeout(ready_timeout), self.global_events() as events:
                response = await self._request(
                    "POST", "/experimental/worktree", json=body, idempotent=False
                )
                worktree = Worktree.model_validate(response.json())
                async for event in events:
                    if event.directory != worktree.directory:
                        continue
                    if event.type == "worktree.ready":
                        return worktree
                    if event.type == "worktree.failed":
                        detail = event.payload.properties.get("message", "")
                        raise AgentServerError(
                            self.base_url, f"worktree {worktree.name} failed: {detail}"
                        )
                raise AgentServerError(
                    self.base_url, f"worktree {worktree.name}: event stream ended before ready"
                )
        except BaseException as error:
            if worktree is not None:
                with contextlib.suppress(Exception):
                    await self.remove_worktree(worktree.directory)
            if isinstance(error, TimeoutError):
                raise AgentServerError(
                    self.base_url, f"worktree {name or ''} not ready after {ready_timeout:g}s"
                ) from error
            raise

    async def worktrees(self) -> list[str]:
        """The directories of the project's worktrees."""
        response = await self._request("GET", "/experimental/worktree")
        return [str(directory) for directory in response.json()]

    async def remove_worktree(self, directory: str) -> bool:
        """Delete the worktree's directory (uncommitted changes included) and its branch; the
        server also disposes of its instance for that directory. True for an unknown one too."""
        response = await self._request(
            "DELETE", "/experimental/worktree", json={"directory": directory}
        )
        return bool(response.json())

    async def reset_worktree(self, directory: str) -> bool:
        """Discard every change of the worktree: its branch back to the project's default
        branch, untracked files removed (to reuse a worktree)."""
        response = await self._request(
            "POST", "/experimental/worktree/reset", json={"directory": directory}
        )
        return bool(response.json())

    # --- events -----------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def global_events(
        self, read_timeout: float = EVENT_READ_TIMEOUT_SECONDS
    ) -> AsyncIterator[AsyncIterator[GlobalEvent]]:
        """`GET /global/event`: every directory's events, each with its `directory`.

        Connected (its `server.connected` read) when the block starts, so nothing the block then
        asks the server for can be missed. Not reconnected; a stream silent for `read_timeout`
        (the server sends heartbeats) or broken raises `AgentServerError`.
        """
        path = "/global/event"
        timeout = httpx.Timeout(read_timeout, connect=self._http.timeout.connect)
        try:
            async with aconnect_sse(self._http, "GET", path, timeout=timeout) as source:
                if source.response.is_error:
                    await source.response.aread()
                    raise AgentServerError(
                        self.base_url,
                        f"GET {path}: {source.response.text[:300]}",
                        source.response.status_code,
                    )
                events = self._parse_global(source)
                if await anext(events, None) is None:
                    raise AgentServerError(self.base_url, f"GET {path}: ended at once")
                yield events
        except (httpx.TransportError, SSEError) as error:
            raise AgentServerError(self.base_url, f"GET {path}: {error!r}") from error

    async def _parse_global(self, source: EventSource) -> AsyncIterator[GlobalEvent]:
        async for message in source.aiter_sse():
            if not message.data:
                continue
            try:
                yield GlobalEvent.model_validate(jsonlib.loads(message.data))
            except ValueError:
                logger.warning("unreadable event from %s: %.200s", self.base_url, message.data)
