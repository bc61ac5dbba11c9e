"""An async client of the OpenCode server's documented V1 routes (opencode-ai 1.18.33).

Explicit timeouts on every call; idempotent calls retry a bounded number of times on transport
errors, 429 and 5xx. Calls that are not idempotent (`create_session`, `prompt_async`) retry only
the transport errors that mean the request never reached the server (`NEVER_SENT`: connect
error, connect timeout, no free pooled connection); a failure after sending (read timeout, server
disconnected) or an error status is reported at once, since the server may have acted on it.
Expected absence (an unknown session) raises `AgentSessionGone`.
Every client shares one SSL context per process (`shared_ssl_context`).
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from typing import Any

import httpx

from resources.opencode.errors import AgentServerError, AgentSessionGone
from resources.opencode.models import (
    AgentSession,
    FileDiff,
    Health,
    Message,
    SessionStatus,
)

BASIC_AUTH_USER = "opencode"
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=3.0)
DEFAULT_RETRY_BACKOFF_SECONDS = 0.2
# The request was never sent: retrying it cannot make the server act twice.
NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


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
        self._auth = httpx.BasicAuth(BASIC_AUTH_USER, password) if password else None
        self._attempts = max(1, attempts)
        self._retry_backoff = retry_backoff
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
    ) -> httpx.Response:
        """One call, retried up to `attempts` times: idempotent calls on any transport error,
        429 and 5xx; the others only when the request was never sent (`NEVER_SENT`)."""
        for attempt in range(1, self._attempts + 1):
            last = attempt == self._attempts
            try:
                response = await self._http.request(method, path, json=json, params=params)
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

    async def create_session(self, title: str, parent_id: str | None = None) -> AgentSession:
        body: dict[str, Any] = {"title": title}
        if parent_id:
            body["parentID"] = parent_id
        response = await self._request("POST", "/session", json=body, idempotent=False)
        return AgentSession.model_validate(response.json())

    async def prompt_async(
        self,
        session_id: str,
        text: str,
        agent: str | None = None,
        model: str | None = None,
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
        )

    async def statuses(self) -> dict[str, SessionStatus]:
        """Status of the server's non-idle sessions (a session missing from it is idle)."""
        response = await self._request("GET", "/session/status")
        return {key: SessionStatus.model_validate(value) for key, value in response.json().items()}

    async def abort(self, session_id: str) -> bool:
        response = await self._request(
            "POST", f"/session/{session_id}/abort", session_id=session_id
        )
        return bool(response.json())

    async def messages(self, session_id: str) -> list[Message]:
        response = await self._request(
            "GET", f"/session/{session_id}/message", session_id=session_id
        )
        return [Message.model_validate(item) for item in response.json()]

    async def diff(self, session_id: str, message_id: str | None = None) -> list[FileDiff]:
        """Files changed since `message_id` (the server returns nothing without one)."""
        params = {"messageID": message_id} if message_id else None
        response = await self._request(
            "GET", f"/session/{session_id}/diff", params=params, session_id=session_id
        )
        return [FileDiff.model_validate(item) for item in response.json()]

    async def reply_permission(self, request_id: str, reply: str, message: str = "") -> bool:
        body: dict[str, Any] = {"reply": reply}
        if message:
            body["message"] = message
        response = await self._request("POST", f"/permission/{request_id}/reply", json=body)
        return bool(response.json())
