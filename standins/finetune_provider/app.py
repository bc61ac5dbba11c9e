"""The stand-in provider over HTTP: the OpenAI routes the adapter uses, answered as OpenAI does.

Routes (all under ``/v1``, all need ``Authorization: Bearer <key>``; the key is the caller's
tenant): ``POST /files`` (multipart ``file`` + ``purpose``), ``GET /files``, ``GET /files/{id}``;
``POST /fine_tuning/jobs``, ``GET /fine_tuning/jobs``, ``GET /fine_tuning/jobs/{id}``,
``GET /fine_tuning/jobs/{id}/events`` (newest first, ``after`` + ``limit``),
``POST /fine_tuning/jobs/{id}/cancel``; ``GET /models``; ``POST /chat/completions`` (streaming
or not); ``POST /inference_keys`` ``{"suffix": "acme"}`` (a key that may only chat with the
models tuned with that suffix, and list them: what an agent running them is given). Errors are
``{"error": {"message", "type", "param", "code"}}``.

Outside ``/v1``, for tests and the demo: ``POST /_standin/faults`` ``{"status": 429, "times": 2,
"retry_after_ms": 50}`` answers the next ``times`` API requests with that status (a rate limit or
an outage, for the client's retries); ``GET /_standin/requests`` lists the API requests received
(method, path, status), never their keys.
"""

from __future__ import annotations

import threading
from typing import Any

from fastapi import FastAPI, Form, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from standins import openai_chat
from standins.finetune_provider.provider import (
    FineTuneProvider,
    JobRequest,
    ProviderRefusal,
    owner_of,
)

DEFAULT_PAGE = 20
ERROR_TYPES = {401: "invalid_request_error", 404: "invalid_request_error", 429: "requests"}


class Faults:
    """Injected failures for the next requests, and the record of requests answered."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[tuple[int, int | None]] = []
        self.requests: list[dict[str, Any]] = []

    def inject(self, status: int, times: int, retry_after_ms: int | None) -> None:
        with self._lock:
            self._pending.extend([(status, retry_after_ms)] * times)

    def take(self) -> tuple[int, int | None] | None:
        with self._lock:
            return self._pending.pop(0) if self._pending else None

    def record(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self.requests.append({"method": method, "path": path, "status": status})


def _error(status: int, code: str | None, message: str, param: str | None = None) -> JSONResponse:
    error_type = ERROR_TYPES.get(
        status, "server_error" if status >= 500 else "invalid_request_error"
    )
    body = openai_chat.error_body(message, error_type, code)
    body["error"]["param"] = param
    return JSONResponse(body, status_code=status)


def _page(items: list[dict[str, Any]], after: str | None, limit: int) -> dict[str, Any]:
    """OpenAI's cursor page: items after the one named `after` (newest first), `limit` of them."""
    if after is not None:
        ids = [item["id"] for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    return {"object": "list", "data": items[:limit], "has_more": len(items) > limit}


def file_object(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "object": "file",
        "bytes": row["bytes"],
        "created_at": int(row["created_at"]),
        "filename": row["filename"],
        "purpose": row["purpose"],
        "status": "processed",
        "status_details": None,
        "expires_at": None,
    }


def job_object(row: dict[str, Any]) -> dict[str, Any]:
    hyperparameters = {
        "n_epochs": row["n_epochs"],
        "batch_size": row["batch_size"],
        "learning_rate_multiplier": row["learning_rate_multiplier"],
    }
    error = None
    if row["error_code"]:
        error = {
            "code": row["error_code"],
            "message": row["error_message"],
            "param": row["error_param"],
        }
    return {
        "id": row["id"],
        "object": "fine_tuning.job",
        "created_at": int(row["created_at"]),
        "error": error,
        "fine_tuned_model": row["fine_tuned_model"],
        "finished_at": int(row["finished_at"]) if row["finished_at"] else None,
        "hyperparameters": hyperparameters,
        "method": {"type": "supervised", "supervised": {"hyperparameters": hyperparameters}},
        "model": row["model"],
        "organization_id": row["organization_id"],
        "result_files": [],
        "seed": row["seed"],
        "status": row["status"],
        "trained_tokens": row["trained_tokens"] if row["status"] == "succeeded" else None,
        "training_file": row["training_file"],
        "validation_file": None,
        "estimated_finish": None,
        "integrations": None,
        "metadata": None,
        "suffix": row["suffix"],
    }


def event_object(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "object": "fine_tuning.job.event",
        "created_at": int(row["created_at"]),
        "level": row["level"],
        "message": row["message"],
        "type": row["type"],
        "data": row["data"],
    }


def _job_request(body: dict[str, Any]) -> JobRequest:
    hyper = dict(body.get("hyperparameters") or {})
    method = body.get("method") or {}
    hyper.update(((method.get("supervised") or {}).get("hyperparameters")) or {})

    def number(key: str, kind: type) -> Any:
        value = hyper.get(key)
        return None if value in (None, "auto") else kind(value)

    if not isinstance(body.get("model"), str) or not isinstance(body.get("training_file"), str):
        raise ProviderRefusal(400, "invalid_request", "'model' and 'training_file' are required")
    return JobRequest(
        model=body["model"],
        training_file=body["training_file"],
        suffix=body.get("suffix"),
        seed=body.get("seed"),
        n_epochs=number("n_epochs", int),
        batch_size=number("batch_size", int),
        learning_rate_multiplier=number("learning_rate_multiplier", float),
    )


def create_app(provider: FineTuneProvider, faults: Faults | None = None) -> FastAPI:
    faults = faults or Faults()
    app = FastAPI(title="stand-in fine-tuning provider", docs_url=None, openapi_url=None)
    app.state.provider = provider
    app.state.faults = faults

    @app.middleware("http")
    async def gate(request: Request, call_next: Any) -> Response:
        """Injected faults first, then the API key (the caller's tenant), then the route."""
        if not request.url.path.startswith("/v1/"):
            return await call_next(request)
        fault = faults.take()
        if fault is not None:
            status, retry_after_ms = fault
            code = "rate_limit_exceeded" if status == 429 else None
            response: Response = _error(status, code, f"injected fault: {status}")
            if retry_after_ms is not None:
                response.headers["retry-after-ms"] = str(retry_after_ms)
        else:
            key = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            if not key:
                response = _error(401, "invalid_api_key", "Missing bearer API key")
            else:
                response = await _as_caller(request, key, call_next)
        faults.record(request.method, request.url.path, response.status_code)
        return response

    async def _as_caller(request: Request, key: str, call_next: Any) -> Response:
        """An owner's key does everything for the owner; an inference key only chats with (and
        lists) its suffix's models."""
        try:
            restriction = provider.restriction(key)
        except ProviderRefusal as refusal:
            return _error(refusal.status, refusal.code, refusal.message, refusal.param)
        request.state.suffix = None
        if restriction is None:
            request.state.owner = owner_of(key)
        else:
            request.state.owner, request.state.suffix = restriction
            allowed = {("POST", "/v1/chat/completions"), ("GET", "/v1/models")}
            if (request.method, request.url.path) not in allowed:
                return _error(403, "restricted_key", "This key may only use chat completions")
        return await call_next(request)

    @app.exception_handler(ProviderRefusal)
    async def refused(request: Request, refusal: ProviderRefusal) -> JSONResponse:
        return _error(refusal.status, refusal.code, refusal.message, refusal.param)

    @app.post("/v1/files")
    async def upload(request: Request, file: UploadFile, purpose: str = Form("")) -> dict[str, Any]:
        if not purpose:
            raise ProviderRefusal(400, "invalid_request", "'purpose' is required", "purpose")
        content = await file.read()
        row = provider.upload(request.state.owner, file.filename or "upload", purpose, content)
        return file_object(row)

    @app.get("/v1/files")
    async def list_files(request: Request) -> dict[str, Any]:
        rows = provider.store.files(request.state.owner)
        return {"object": "list", "data": [file_object(row) for row in rows], "has_more": False}

    @app.get("/v1/files/{file_id}")
    async def retrieve_file(request: Request, file_id: str) -> dict[str, Any]:
        return file_object(provider.file(request.state.owner, file_id))

    @app.post("/v1/fine_tuning/jobs")
    async def create_job(request: Request) -> dict[str, Any]:
        body = await request.json()
        if not isinstance(body, dict):
            raise ProviderRefusal(400, "invalid_request", "a JSON object is expected")
        job = await run_in_threadpool(provider.create_job, request.state.owner, _job_request(body))
        return job_object(job)

    @app.get("/v1/fine_tuning/jobs")
    async def list_jobs(
        request: Request, after: str | None = None, limit: int = DEFAULT_PAGE
    ) -> dict[str, Any]:
        rows = [
            job_object(row) for row in await run_in_threadpool(provider.jobs, request.state.owner)
        ]
        return _page(rows, after, limit)

    @app.get("/v1/fine_tuning/jobs/{job_id}")
    async def retrieve_job(request: Request, job_id: str) -> dict[str, Any]:
        return job_object(await run_in_threadpool(provider.job, request.state.owner, job_id))

    @app.get("/v1/fine_tuning/jobs/{job_id}/events")
    async def list_events(
        request: Request, job_id: str, after: str | None = None, limit: int = DEFAULT_PAGE
    ) -> dict[str, Any]:
        events = await run_in_threadpool(provider.events, request.state.owner, job_id)
        rows = [event_object(row) for row in events]
        return _page(rows, after, limit)

    @app.post("/v1/fine_tuning/jobs/{job_id}/cancel")
    async def cancel_job(request: Request, job_id: str) -> dict[str, Any]:
        return job_object(await run_in_threadpool(provider.cancel, request.state.owner, job_id))

    @app.get("/v1/models")
    async def list_models(request: Request) -> dict[str, Any]:
        return {
            "object": "list",
            "data": [
                {"id": name, "object": "model", "created": 0, "owned_by": "standin"}
                for name in provider.model_ids(request.state.owner)
                if name in provider.base_models
                or provider.within_suffix(name, request.state.suffix)
            ],
        }

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        body = await request.json()
        messages = body.get("messages") if isinstance(body, dict) else None
        if not isinstance(messages, list) or not isinstance(body.get("model"), str):
            raise ProviderRefusal(400, "invalid_request", "'model' and 'messages' are required")
        question = next(
            (
                openai_chat.content_text(m.get("content"))
                for m in reversed(messages)
                if isinstance(m, dict) and m.get("role") == "user"
            ),
            "",
        )
        model = body["model"]
        if model not in provider.base_models and not provider.within_suffix(
            model, request.state.suffix
        ):
            raise ProviderRefusal(
                404,
                "model_not_found",
                f"The model `{model}` does not exist or you do not have access to it.",
                "model",
            )
        text = await run_in_threadpool(provider.answer, request.state.owner, model, question)
        usage = openai_chat.usage(
            openai_chat.prompt_tokens(body), openai_chat.estimate_tokens(text)
        )
        if not body.get("stream"):
            return JSONResponse(
                openai_chat.completion(body["model"], text=text, tool_calls=None, usage_block=usage)
            )
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        chunks = openai_chat.stream_chunks(
            body["model"],
            text=text,
            tool_calls=None,
            usage_block=usage,
            include_usage=include_usage,
        )
        payload = b"".join(openai_chat.sse_data(c) for c in chunks) + openai_chat.sse_data("[DONE]")
        return Response(payload, media_type="text/event-stream")

    @app.post("/v1/inference_keys")
    async def create_inference_key(request: Request) -> dict[str, Any]:
        """The stand-in's restricted keys (a real provider's project keys limited to inference
        play this part): the owner asks for one per model suffix."""
        body = await request.json()
        suffix = body.get("suffix") if isinstance(body, dict) else None
        if not isinstance(suffix, str):
            raise ProviderRefusal(400, "invalid_request", "'suffix' is required", "suffix")
        key = await run_in_threadpool(provider.create_inference_key, request.state.owner, suffix)
        return {"object": "inference_key", "key": key, "suffix": suffix}

    @app.post("/_standin/faults")
    async def inject_faults(request: Request) -> dict[str, Any]:
        body = await request.json()
        faults.inject(int(body["status"]), int(body.get("times", 1)), body.get("retry_after_ms"))
        return {"injected": int(body.get("times", 1))}

    @app.get("/_standin/requests")
    async def recorded_requests() -> list[dict[str, Any]]:
        return list(faults.requests)

    return app
