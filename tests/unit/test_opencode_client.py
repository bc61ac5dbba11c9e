"""The OpenCode client's HTTP plumbing, without an OpenCode server.

- One SSL context per process: building one costs ~20 ms of CPU (``ssl.create_default_context``
  loads the CA bundle), and a wave builds a client per agent; every client shares it.
- Retries: idempotent calls retry transport errors, 429 and 5xx; calls that are not idempotent
  (``create_session``, ``prompt_async``) retry only the transport errors that mean the request
  never reached the server (connect error, connect timeout, no free pooled connection), never a
  failure after sending (read timeout, server disconnected), nor an error status. The server is
  an ``httpx.MockTransport`` that fails the first N requests, then answers.
- Directories: every call that takes ``directory`` sends it as the ``directory`` query parameter
  (what the server reads first); ``/global/event`` envelopes parse into ``GlobalEvent``.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import certifi
import httpx
import pytest

from resources.opencode.client import (
    SENT_ONCE_READ_TIMEOUT_SECONDS,
    OpenCodeClient,
    shared_ssl_context,
)
from resources.opencode.errors import AgentServerError
from resources.opencode.models import GlobalEvent

SESSION = {"id": "ses_1", "title": "t", "directory": "/w"}


@pytest.fixture
def context_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """Every ``ssl.create_default_context`` call (its keyword arguments), from a fresh cache."""
    calls: list[dict[str, Any]] = []
    original = ssl.create_default_context

    def counting(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        calls.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(ssl, "create_default_context", counting)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    shared_ssl_context.cache_clear()
    yield calls
    shared_ssl_context.cache_clear()


async def _open_and_close(count: int) -> list[OpenCodeClient]:
    clients = [OpenCodeClient(f"http://127.0.0.1:{4000 + n}") for n in range(count)]
    for client in clients:
        await client.aclose()
    return clients


def test_clients_share_one_ssl_context_built_once(context_calls: list[dict[str, Any]]) -> None:
    asyncio.run(_open_and_close(5))
    assert len(context_calls) == 1
    assert context_calls[0] == {"cafile": certifi.where()}
    assert shared_ssl_context() is shared_ssl_context()
    assert len(context_calls) == 1


def test_the_ssl_context_honours_ssl_cert_file(
    context_calls: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", certifi.where())
    asyncio.run(_open_and_close(2))
    assert context_calls == [{"cafile": certifi.where()}]


def test_the_ssl_context_honours_ssl_cert_dir(
    context_calls: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))
    asyncio.run(_open_and_close(2))
    assert context_calls == [{"capath": str(tmp_path)}]


# --- retries ----------------------------------------------------------------------------------


class FlakyServer:
    """Fails the first ``failures`` requests (raising ``error`` or answering ``status``)."""

    def __init__(
        self,
        failures: int,
        error: type[httpx.TransportError] | None = None,
        status: int | None = None,
    ) -> None:
        self.failures = failures
        self.error = error
        self.status = status
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if len(self.requests) <= self.failures:
            if self.error is not None:
                raise self.error("scripted failure", request=request)
            return httpx.Response(self.status or 503, text="scripted failure")
        if request.url.path == "/session":
            return httpx.Response(200, json=SESSION)
        if request.url.path.endswith("/prompt_async"):
            return httpx.Response(204)
        return httpx.Response(200, json={})


def on_transport(
    handler: Callable[[httpx.Request], httpx.Response],
    work: Callable[[OpenCodeClient], Awaitable[Any]],
) -> Any:
    """Run `work` with a client whose network is `handler`."""

    async def run() -> Any:
        async with OpenCodeClient(
            "http://opencode.test", transport=httpx.MockTransport(handler)
        ) as client:
            return await work(client)

    return asyncio.run(run())


def client_on(server: FlakyServer, attempts: int = 3) -> OpenCodeClient:
    return OpenCodeClient(
        "http://opencode.test",
        attempts=attempts,
        retry_backoff=0.001,
        transport=httpx.MockTransport(server),
    )


async def _create(server: FlakyServer, attempts: int = 3) -> Any:
    async with client_on(server, attempts) as client:
        return await client.create_session("t")


async def _prompt(server: FlakyServer) -> None:
    async with client_on(server) as client:
        await client.prompt_async("ses_1", "hello")


async def _statuses(server: FlakyServer) -> Any:
    async with client_on(server) as client:
        return await client.statuses()


NEVER_SENT = [httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout]
AFTER_SENDING = [httpx.ReadTimeout, httpx.RemoteProtocolError, httpx.WriteError, httpx.ReadError]


@pytest.mark.parametrize("error", NEVER_SENT)
def test_create_session_retries_a_request_that_never_reached_the_server(
    error: type[httpx.TransportError],
) -> None:
    server = FlakyServer(failures=2, error=error)
    session = asyncio.run(_create(server))
    assert session.id == "ses_1"
    assert len(server.requests) == 3
    assert all(request.content == server.requests[0].content for request in server.requests)


def test_prompt_async_retries_a_refused_connection() -> None:
    server = FlakyServer(failures=1, error=httpx.ConnectError)
    asyncio.run(_prompt(server))
    assert [request.url.path for request in server.requests] == ["/session/ses_1/prompt_async"] * 2


def test_never_sent_retries_are_bounded() -> None:
    server = FlakyServer(failures=10, error=httpx.ConnectError)
    with pytest.raises(AgentServerError, match="ConnectError") as raised:
        asyncio.run(_create(server, attempts=4))
    assert len(server.requests) == 4
    assert isinstance(raised.value.__cause__, httpx.ConnectError)
    assert raised.value.status_code is None


@pytest.mark.parametrize("call", [_create, _prompt], ids=["create_session", "prompt_async"])
@pytest.mark.parametrize("error", AFTER_SENDING)
def test_calls_that_are_not_idempotent_do_not_retry_a_failure_after_sending(
    call: Callable[[FlakyServer], Awaitable[Any]], error: type[httpx.TransportError]
) -> None:
    server = FlakyServer(failures=1, error=error)
    with pytest.raises(AgentServerError, match=error.__name__):
        asyncio.run(call(server))
    assert len(server.requests) == 1


@pytest.mark.parametrize("status", [429, 500, 503])
def test_create_session_does_not_retry_an_error_status(status: int) -> None:
    server = FlakyServer(failures=1, status=status)
    with pytest.raises(AgentServerError) as raised:
        asyncio.run(_create(server))
    assert raised.value.status_code == status
    assert len(server.requests) == 1


@pytest.mark.parametrize("error", [*NEVER_SENT, *AFTER_SENDING])
def test_idempotent_calls_retry_every_transport_error(error: type[httpx.TransportError]) -> None:
    server = FlakyServer(failures=2, error=error)
    assert asyncio.run(_statuses(server)) == {}
    assert len(server.requests) == 3


def test_idempotent_calls_retry_5xx() -> None:
    server = FlakyServer(failures=2, status=503)
    assert asyncio.run(_statuses(server)) == {}
    assert len(server.requests) == 3


def test_a_refused_connection_on_a_real_socket_is_retried_then_reported() -> None:
    """Nothing listens on the port: every attempt is refused (never sent), all are made."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused

        async def create() -> None:
            async with OpenCodeClient(
                f"http://127.0.0.1:{port}", attempts=3, retry_backoff=0.05
            ) as client:
                await client.create_session("t")

        started = time.monotonic()
        with pytest.raises(AgentServerError, match="ConnectError"):
            asyncio.run(create())
    assert time.monotonic() - started >= 0.05 + 0.1  # two backoffs: 3 attempts


# --- directories ------------------------------------------------------------------------------

WORKTREE = "/srv/home/.local/share/opencode/worktree/abc/ind-1"


class RecordingServer:
    """Answers every route the client uses; keeps each request."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if path == "/session":
            return httpx.Response(200, json={**SESSION, "directory": WORKTREE})
        if path.endswith("/prompt_async"):
            return httpx.Response(204)
        if path in ("/session/status",):
            return httpx.Response(200, json={"ses_1": {"type": "busy"}})
        if path.endswith(("/message", "/diff")) or path == "/experimental/worktree":
            return httpx.Response(200, json=[] if request.method == "GET" else True)
        return httpx.Response(200, json=True)


async def _every_scoped_call(client: OpenCodeClient) -> None:
    await client.create_session("t", directory=WORKTREE)
    await client.prompt_async("ses_1", "hello", directory=WORKTREE)
    await client.statuses(directory=WORKTREE)
    await client.messages("ses_1", directory=WORKTREE)
    await client.diff("ses_1", "msg_1", directory=WORKTREE)
    await client.abort("ses_1", directory=WORKTREE)
    await client.reply_permission("per_1", "once", directory=WORKTREE)


def test_every_scoped_call_sends_the_directory_as_a_query_parameter() -> None:
    server = RecordingServer()
    on_transport(server, _every_scoped_call)
    assert [r.url.params.get("directory") for r in server.requests] == [WORKTREE] * 7
    assert server.requests[4].url.params["messageID"] == "msg_1"


async def _unscoped_calls(client: OpenCodeClient) -> None:
    await client.create_session("t")
    await client.statuses()
    await client.abort("ses_1")


def test_without_a_directory_no_parameter_is_sent() -> None:
    server = RecordingServer()
    on_transport(server, _unscoped_calls)
    assert all("directory" not in r.url.params for r in server.requests)


async def _remove_and_reset(client: OpenCodeClient) -> tuple[bool, bool]:
    return await client.remove_worktree(WORKTREE), await client.reset_worktree(WORKTREE)


def test_worktree_removal_and_reset_name_the_directory_in_the_body() -> None:
    server = RecordingServer()
    assert on_transport(server, _remove_and_reset) == (True, True)
    removal, reset = server.requests
    assert (removal.method, removal.url.path) == ("DELETE", "/experimental/worktree")
    assert (reset.method, reset.url.path) == ("POST", "/experimental/worktree/reset")
    assert removal.content == reset.content == b'{"directory":"' + WORKTREE.encode() + b'"}'


def test_global_event_envelopes_parse() -> None:
    session_event = GlobalEvent.model_validate(
        {
            "directory": WORKTREE,
            "project": "abc",
            "payload": {
                "id": "evt_1",
                "type": "session.status",
                "properties": {"sessionID": "ses_1", "status": {"type": "busy"}},
            },
        }
    )
    assert session_event.directory == WORKTREE
    assert session_event.type == "session.status"
    assert session_event.session_id == "ses_1"
    assert session_event.payload.status is not None
    assert session_event.payload.status.type == "busy"

    server_event = GlobalEvent.model_validate(
        {"payload": {"id": "evt_2", "type": "server.heartbeat", "properties": {}}}
    )
    assert server_event.directory is None
    assert server_event.session_id is None

    # the server also sends each durable event again as a "sync" payload: no session to route
    sync = GlobalEvent.model_validate(
        {
            "directory": WORKTREE,
            "project": "abc",
            "payload": {
                "type": "sync",
                "syncEvent": {"type": "session.created.1", "data": {"sessionID": "ses_1"}},
            },
        }
    )
    assert sync.type == "sync"
    assert sync.session_id is None


class WorktreeServer:
    """`POST /experimental/worktree` answers WORKTREE; `/global/event` sends `events`, then ends."""

    def __init__(self, *events: dict[str, Any]) -> None:
        self.events = [{"payload": {"type": "server.connected", "properties": {}}}, *events]
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == "/global/event":
            body = "".join(f"data: {json.dumps(event)}\n\n" for event in self.events)
            return httpx.Response(
                200, headers={"content-type": "text/event-stream"}, content=body.encode()
            )
        if request.method == "POST":
            return httpx.Response(
                200, json={"name": "ind-1", "branch": "opencode/ind-1", "directory": WORKTREE}
            )
        return httpx.Response(200, json=True)

    def routes(self) -> list[str]:
        return [f"{r.method} {r.url.path}" for r in self.requests]


def worktree_event(event_type: str, directory: str = WORKTREE, **properties: Any) -> dict:
    return {"directory": directory, "payload": {"type": event_type, "properties": properties}}


def _create_worktree(server: Callable[[httpx.Request], httpx.Response]) -> Any:
    return on_transport(server, lambda client: client.create_worktree("IND-1"))


def test_create_worktree_returns_once_the_server_says_it_is_ready() -> None:
    server = WorktreeServer(
        worktree_event("worktree.ready", directory="/elsewhere", name="other"),
        worktree_event("worktree.ready", name="ind-1", branch="opencode/ind-1"),
    )
    worktree = _create_worktree(server)
    assert (worktree.name, worktree.branch, worktree.directory) == (
        "ind-1",
        "opencode/ind-1",
        WORKTREE,
    )
    # subscribed before asking, so the ready event cannot be missed
    assert server.routes() == ["GET /global/event", "POST /experimental/worktree"]
    assert json.loads(server.requests[1].content) == {"name": "IND-1"}


@pytest.mark.parametrize(
    "events",
    [
        [worktree_event("worktree.failed", message="checkout failed")],
        [worktree_event("worktree.ready", directory="/elsewhere")],  # then the stream ends
    ],
    ids=["failed", "stream-ended"],
)
def test_a_worktree_that_never_gets_ready_is_removed_and_reported(
    events: list[dict[str, Any]],
) -> None:
    server = WorktreeServer(*events)
    with pytest.raises(AgentServerError, match="worktree"):
        _create_worktree(server)
    assert server.routes()[-1] == "DELETE /experimental/worktree"
    assert json.loads(server.requests[-1].content) == {"directory": WORKTREE}


class ConnectedThenSilent(httpx.AsyncByteStream):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b'data: {"payload": {"type": "server.connected", "properties": {}}}\n\n'
        await asyncio.sleep(3600)


def test_a_worktree_not_ready_in_time_is_removed_and_reported() -> None:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        if request.url.path == "/global/event":
            return httpx.Response(
                200, headers={"content-type": "text/event-stream"}, stream=ConnectedThenSilent()
            )
        if request.method == "POST":
            return httpx.Response(200, json={"name": "slow", "directory": WORKTREE})
        return httpx.Response(200, json=True)

    with pytest.raises(AgentServerError, match=r"not ready after 0\.3s"):
        on_transport(handler, lambda client: client.create_worktree("slow", ready_timeout=0.3))
    assert [f"{r.method} {r.url.path}" for r in requests][-1] == "DELETE /experimental/worktree"


def test_a_session_create_waits_longer_for_its_answer_than_other_calls() -> None:
    """A server making a new instance for a directory answers a create late, and a create that
    times out costs the session a whole retry: it waits `SENT_ONCE_READ_TIMEOUT_SECONDS`, the
    other calls the client's read timeout (10 s)."""
    server = FlakyServer(failures=0)

    async def create_then_read() -> None:
        async with client_on(server) as client:
            await client.create_session("t")
            await client.statuses()

    asyncio.run(create_then_read())
    reads = [request.extensions["timeout"]["read"] for request in server.requests]
    assert reads == [SENT_ONCE_READ_TIMEOUT_SECONDS, 10.0]
    assert SENT_ONCE_READ_TIMEOUT_SECONDS >= 60


def test_a_prompt_waits_as_long_for_its_answer_as_a_create() -> None:
    """A server with hundreds of sessions in one instance answers `prompt_async` late (the
    bench's 1,000 held: 157 attempts failed on a 10 s read timeout, every one retried, while the
    server may well have run the prompt): a prompt is not idempotent, so waiting is cheaper
    than failing."""
    server = FlakyServer(failures=0)

    async def prompt_then_read() -> None:
        async with client_on(server) as client:
            await client.prompt_async("ses_1", "hello")
            await client.statuses()

    asyncio.run(prompt_then_read())
    reads = [request.extensions["timeout"]["read"] for request in server.requests]
    assert reads == [SENT_ONCE_READ_TIMEOUT_SECONDS, 10.0]
    assert SENT_ONCE_READ_TIMEOUT_SECONDS >= 60
