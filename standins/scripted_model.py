"""The scripted model: an OpenAI-compatible chat-completions server whose answers follow scripts.

OpenCode (or any OpenAI-compatible client) talks to it as to a model provider; a marker in the
conversation's first user message picks the script, so a test decides in its prompt whether the
"model" answers text, calls OpenCode's ``write`` tool (a real file, a real diff), its ``read`` or
``bash`` tool, fails with 401, fails with 5xx a few times, hangs, or answers slowly. The marker
syntax and the scripts are documented in :mod:`standins.model_script`; in short::

    [script:text reply="..."]
    [script:write path=notes/hello.md content="# Hello\\n" reply="..."]
    [script:read path=notes/hello.md reply="..."]
    [script:bash command="ls -la" reply="..."]
    [script:fail-401 message="..."]
    [script:fail-5xx times=2 status=500]
    [script:hang]
    [script:slow seconds=3 reply="..."]

Routes:

- ``GET /v1/models``: the served model ids (default ``coder``).
- ``POST /v1/chat/completions``: streaming (``stream: true``: SSE ``data: {chunk}`` lines, the last
  choice chunk carries ``finish_reason``, then a usage chunk when
  ``stream_options.include_usage`` is true, then ``data: [DONE]``) and non-streaming. Usage is
  realistic: prompt tokens are the characters of all messages and tools / 4, completion tokens
  the characters of the answer / 4, so the client computes tokens and cost from its configured
  price.
- ``GET /_scripted/requests``: every chat request received (body, script, decision, outcome),
  for tests and debugging; ``POST /_scripted/reset`` forgets them and all per-conversation state.

OpenCode's auxiliary calls (the session-title generator) do not follow scripts: they get a
short title, so a ``hang`` or ``fail-5xx`` prompt affects only the agent's own model calls.

Per-conversation state (the failure count of ``fail-5xx``) is keyed by the hash of the client's
session id (OpenCode sends ``x-session-id``) and the first user message; a client without such a
header should give each conversation a distinct prompt (say, with a nonce).

Run it: ``python -m standins.scripted_model --port 18080 [--host 127.0.0.1]``; in tests use
:func:`running_scripted_model` (a context manager yielding the base URL, ``.../v1`` appended by
the caller as the provider's ``baseURL``).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import os
import re
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from standins import openai_chat
from standins.background_server import BackgroundServer
from standins.model_script import Script, ScriptError, parse_script

DEFAULT_MODEL_IDS = ("coder",)
MAX_RECORDED_REQUESTS = 2000
TITLE_GENERATOR_HINT = "title generator"
WORKING_DIRECTORY = re.compile(r"Working directory:\s*(\S[^\n]*)")
DISCONNECT_POLL_SECONDS = 0.2
WRITE_TOOL = "write"
READ_TOOL = "read"
BASH_TOOL = "bash"
SESSION_HEADER = "x-session-id"  # OpenCode's session id, on every model request


@dataclass
class Turn:
    """What the model does for one request."""

    kind: str  # "text" | "tool_calls" | "error" | "hang"
    text: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    error: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0  # spread the answer over this long (slow script)


@dataclass
class RecordedRequest:
    index: int
    received_at: float
    path: str
    headers: dict[str, str]
    body: Any
    conversation: str = ""
    script: str = ""
    decision: str = ""
    outcome: str = "pending"

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "received_at": self.received_at,
            "path": self.path,
            "headers": self.headers,
            "conversation": self.conversation,
            "script": self.script,
            "decision": self.decision,
            "outcome": self.outcome,
            "body": self.body,
        }


def conversation_key(first_user_text: str, session: str = "") -> str:
    """A stable id of one conversation: the client's session id (OpenCode sends
    ``x-session-id``) and the first user message."""
    return hashlib.sha256(f"{session}\n{first_user_text}".encode()).hexdigest()[:16]


def working_directory(messages: list[dict[str, Any]]) -> str | None:
    """The working directory OpenCode states in its system prompt (``Working directory: ...``)."""
    match = WORKING_DIRECTORY.search(openai_chat.system_text(messages))
    return match.group(1).strip() if match else None


def is_title_request(messages: list[dict[str, Any]]) -> bool:
    return TITLE_GENERATOR_HINT in openai_chat.system_text(messages).lower()


def count_tool_results(messages: list[dict[str, Any]]) -> int:
    return sum(1 for message in messages if message.get("role") == "tool")


class ScriptedModel:
    """The model's state (recorded requests, failure counters) and its script decisions.

    Thread-safe: the state is guarded by a lock, so one instance may serve any number of
    concurrent requests (and be inspected from the test thread).
    """

    def __init__(self, model_ids: tuple[str, ...] = DEFAULT_MODEL_IDS) -> None:
        self.model_ids = model_ids
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._next_index = 0
        self._failures: dict[str, int] = {}
        self._sessions_by_prompt: dict[str, list[str]] = {}
        self._closing = threading.Event()

    # --- state -----------------------------------------------------------------------------

    def record(self, path: str, headers: dict[str, str], body: Any) -> RecordedRequest:
        with self._lock:
            entry = RecordedRequest(self._next_index, time.time(), path, headers, body)
            self._next_index += 1
            self._requests.append(entry)
            del self._requests[:-MAX_RECORDED_REQUESTS]
            return entry

    def requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return [entry.as_dict() for entry in self._requests]

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
            self._failures.clear()
            self._sessions_by_prompt.clear()

    def close(self) -> None:
        """Release hanging requests (called before the server stops)."""
        self._closing.set()

    @property
    def closing(self) -> bool:
        return self._closing.is_set()

    def _take_failure(self, key: str, times: int) -> bool:
        """True while this conversation has failures left to serve (counts one)."""
        with self._lock:
            served = self._failures.get(key, 0)
            if served >= times:
                return False
            self._failures[key] = served + 1
            return True

    def _attempt_number(self, first_user_text: str, session: str) -> int:
        """1 for the first agent session that sent this prompt, 2 for the next, and so on."""
        prompt = hashlib.sha256(first_user_text.encode()).hexdigest()
        with self._lock:
            sessions = self._sessions_by_prompt.setdefault(prompt, [])
            if session not in sessions:
                sessions.append(session)
            return sessions.index(session) + 1

    # --- decisions -------------------------------------------------------------------------

    def decide(self, body: dict[str, Any], entry: RecordedRequest) -> Turn:
        messages = body.get("messages") or []
        first = openai_chat.first_user_text(messages)
        entry.conversation = conversation_key(first, entry.headers.get(SESSION_HEADER, ""))
        if is_title_request(messages):
            entry.script = "title"
            return Turn("text", text="Scripted session")
        try:
            script = parse_script(first)
        except ScriptError as error:
            entry.script = "invalid"
            return Turn(
                "error",
                status=400,
                error=openai_chat.error_body(str(error), "invalid_request_error"),
            )
        entry.script = script.name
        if script.attempts is not None and script.name in {"fail-401", "hang"}:
            attempt = self._attempt_number(first, entry.headers.get(SESSION_HEADER, ""))
            if attempt > script.attempts:
                return Turn("text", text=script.reply)
        return self._turn_for(script, messages, entry.conversation)

    def _turn_for(self, script: Script, messages: list[dict[str, Any]], key: str) -> Turn:
        if script.name == "fail-401":
            return Turn(
                "error",
                status=401,
                error=openai_chat.error_body(
                    script.message, "invalid_request_error", "invalid_api_key"
                ),
            )
        if script.name == "fail-5xx" and self._take_failure(key, script.times):
            headers = {}
            if script.retry_after is not None:
                headers = {
                    "retry-after-ms": str(round(script.retry_after * 1000)),
                    "retry-after": str(math.ceil(script.retry_after)),
                }
            return Turn(
                "error",
                status=script.status,
                error=openai_chat.error_body(script.message, "server_error"),
                headers=headers,
            )
        if script.name == "hang":
            return Turn("hang")
        if script.name == "slow":
            return Turn("text", text=script.reply, seconds=script.seconds)
        if script.name == "write" and count_tool_results(messages) == 0:
            return Turn("tool_calls", tool_calls=[self._write_call(script, messages)])
        if script.name == "read" and count_tool_results(messages) == 0:
            return Turn("tool_calls", tool_calls=[self._read_call(script, messages)])
        if script.name == "bash" and count_tool_results(messages) == 0:
            call_id = (
                "call_"
                + hashlib.sha256(f"{script.command}{len(messages)}".encode()).hexdigest()[:12]
            )
            arguments = {"command": script.command, "description": "scripted command"}
            return Turn(
                "tool_calls", tool_calls=[openai_chat.tool_call(call_id, BASH_TOOL, arguments)]
            )
        return Turn("text", text=script.reply)

    def _write_call(self, script: Script, messages: list[dict[str, Any]]) -> dict[str, Any]:
        path = _absolute_path(script.path, messages)
        return openai_chat.tool_call(
            _call_id(path, messages), WRITE_TOOL, {"filePath": path, "content": script.content}
        )

    def _read_call(self, script: Script, messages: list[dict[str, Any]]) -> dict[str, Any]:
        path = _absolute_path(script.path, messages)
        return openai_chat.tool_call(_call_id(path, messages), READ_TOOL, {"filePath": path})


def _absolute_path(path: str, messages: list[dict[str, Any]]) -> str:
    """`path` as it is when absolute, else against the working directory OpenCode states."""
    if os.path.isabs(path):
        return path
    directory = working_directory(messages)
    if directory is None:
        raise ScriptError("no 'Working directory:' in the system prompt; use an absolute path")
    return os.path.join(directory, path)


def _call_id(path: str, messages: list[dict[str, Any]]) -> str:
    return "call_" + hashlib.sha256(f"{path}{len(messages)}".encode()).hexdigest()[:12]


# --- HTTP ------------------------------------------------------------------------------------


def create_app(model: ScriptedModel | None = None) -> FastAPI:
    """The FastAPI app serving ``model`` (a fresh :class:`ScriptedModel` when omitted)."""
    model = model or ScriptedModel()
    app = FastAPI(title="scripted model", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.model = model

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [
                {"id": model_id, "object": "model", "created": 0, "owned_by": "scripted"}
                for model_id in model.model_ids
            ],
        }

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        raw = await request.body()
        headers = {
            name: value
            for name, value in request.headers.items()
            if name not in ("authorization", "cookie")
        }
        try:
            body = json.loads(raw)
        except ValueError:
            entry = model.record(request.url.path, headers, raw.decode(errors="replace"))
            return _error(
                entry, 400, openai_chat.error_body("invalid JSON", "invalid_request_error")
            )
        entry = model.record(request.url.path, headers, body)
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            error = openai_chat.error_body("'messages' must be a list", "invalid_request_error")
            return _error(entry, 400, error)
        try:
            turn = model.decide(body, entry)
        except ScriptError as error:
            return _error(entry, 400, openai_chat.error_body(str(error), "invalid_request_error"))
        entry.decision = turn.kind if turn.kind != "error" else f"error {turn.status}"
        if turn.kind == "error":
            return _error(entry, turn.status, turn.error or {}, turn.headers)
        if turn.kind == "hang":
            await _hang(request, model)
            entry.outcome = "released" if model.closing else "client disconnected"
            return Response(status_code=499)
        return await _answer(request, model, body, turn, entry)

    @app.get("/_scripted/requests")
    async def recorded_requests() -> list[dict[str, Any]]:
        return model.requests()

    @app.post("/_scripted/reset")
    async def reset() -> dict[str, bool]:
        model.reset()
        return {"reset": True}

    return app


def _error(
    entry: RecordedRequest,
    status: int,
    body: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    entry.decision = entry.decision or f"error {status}"
    entry.outcome = f"answered {status}"
    return JSONResponse(body, status_code=status, headers=headers)


async def _hang(request: Request, model: ScriptedModel) -> None:
    while not model.closing and not await request.is_disconnected():
        await asyncio.sleep(DISCONNECT_POLL_SECONDS)


async def _answer(
    request: Request, model: ScriptedModel, body: dict[str, Any], turn: Turn, entry: RecordedRequest
) -> Response:
    model_id = str(body.get("model") or model.model_ids[0])
    answer_text = turn.text if turn.kind == "text" else ""
    completion = openai_chat.estimate_tokens(
        answer_text + "".join(call["function"]["arguments"] for call in turn.tool_calls)
    )
    usage_block = openai_chat.usage(openai_chat.prompt_tokens(body), completion)
    tool_calls = turn.tool_calls or None
    if not body.get("stream"):
        deadline = time.monotonic() + turn.seconds
        while time.monotonic() < deadline and not model.closing:
            if await request.is_disconnected():
                entry.outcome = "client disconnected"
                return Response(status_code=499)
            await asyncio.sleep(min(DISCONNECT_POLL_SECONDS, turn.seconds))
        entry.outcome = "answered 200"
        return JSONResponse(
            openai_chat.completion(
                model_id, text=answer_text, tool_calls=tool_calls, usage_block=usage_block
            )
        )
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    chunks = list(
        openai_chat.stream_chunks(
            model_id,
            text=answer_text,
            tool_calls=tool_calls,
            usage_block=usage_block,
            include_usage=include_usage,
        )
    )
    pause = turn.seconds / max(1, len(chunks) - 1)

    async def events() -> AsyncIterator[bytes]:
        entry.outcome = "streaming"
        try:
            for number, chunk in enumerate(chunks):
                if number and pause and not model.closing:
                    await asyncio.sleep(pause)
                yield openai_chat.sse_data(chunk)
            yield openai_chat.sse_data("[DONE]")
            entry.outcome = "answered 200"
        except asyncio.CancelledError:
            entry.outcome = "client disconnected"
            raise

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


# --- running it ------------------------------------------------------------------------------


@contextmanager
def running_scripted_model(
    host: str = "127.0.0.1", port: int = 0, model: ScriptedModel | None = None
) -> Iterator[str]:
    """Serve a scripted model in a background thread; yields its base URL (no ``/v1``).

    Pass your own ``model`` to inspect its state directly (``model.requests()``); otherwise use
    ``GET {url}/_scripted/requests``. Hanging requests are released when the block exits.
    """
    model = model or ScriptedModel()
    server = BackgroundServer(create_app(model), host=host, port=port)
    server.start()
    try:
        yield server.url
    finally:
        model.close()
        server.stop()


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m standins.scripted_model", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18080)
    parser.add_argument("--model", action="append", dest="models", help="model id (repeatable)")
    args = parser.parse_args(argv)
    model = ScriptedModel(tuple(args.models) if args.models else DEFAULT_MODEL_IDS)
    print(f"scripted model on http://{args.host}:{args.port}/v1", flush=True)
    uvicorn.run(create_app(model), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
