"""One JSON error body everywhere: `{"error": {"code", "message", "details"}}`.

Domain errors map to HTTP answers here, in one table, so every route answers alike; another
tenant's record is `NotFound` in the services, so it answers 404 (its existence never shows).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from domain import errors

UNAUTHORIZED_HEADERS = {"WWW-Authenticate": 'Bearer realm="indorch"'}

# (status, code) per domain error; the first match in the class's MRO wins.
_DOMAIN_ANSWERS: dict[type[errors.DomainError], tuple[int, str]] = {
    errors.KeyRefused: (401, "unauthorized"),
    errors.PermissionDenied: (403, "forbidden"),
    errors.NotFound: (404, "not_found"),
    errors.TenantMismatch: (404, "not_found"),
    errors.AlreadyExists: (409, "already_exists"),
    errors.IdempotencyKeyReused: (409, "idempotency_key_reused"),
    errors.ConcurrentModification: (409, "concurrent_modification"),
    errors.InvalidTransition: (409, "invalid_transition"),
    errors.TenantBusy: (409, "tenant_busy"),
    errors.AgentBusy: (409, "agent_busy"),
    errors.ServerInUse: (409, "server_in_use"),
    errors.RetriesExhausted: (409, "retries_exhausted"),
    errors.PromotionRefused: (409, "promotion_refused"),
    errors.InactiveTenant: (403, "tenant_inactive"),
    errors.TokenBudgetExceeded: (429, "token_budget_exceeded"),
    errors.NoAgentAvailable: (503, "no_agent_available"),
    errors.InvalidInput: (422, "invalid_input"),
    errors.InvalidSetting: (500, "invalid_setting"),
    errors.SecretUnreadable: (500, "secret_unreadable"),
    errors.TenantNotSet: (500, "tenant_not_set"),
}


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. not_found, forbidden.")
    message: str
    details: dict[str, Any]


class ErrorBody(BaseModel):
    """The one error body of every route (declared in the OpenAPI document for 4XX and 5XX)."""

    error: ErrorDetail


_ERROR_DESCRIPTIONS = {
    "4XX": "Refused: see the error's code and message.",
    "5XX": "Internal error (details in the server's log).",
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in _ERROR_DESCRIPTIONS.items()
}


def text_route_responses(media_type: str) -> dict[int | str, dict[str, Any]]:
    """The `responses` of a route answering text (a patch, a CSV): its 200 in `media_type`, its
    errors still the JSON error body (a route's own media type would otherwise be theirs)."""
    error_schema = {"$ref": "#/components/schemas/ErrorBody"}
    return {
        200: {"content": {media_type: {"schema": {"type": "string"}}}},
        **{
            status: {
                "description": description,
                "content": {"application/json": {"schema": error_schema}},
            }
            for status, description in _ERROR_DESCRIPTIONS.items()
        },
    }


class ApiError(Exception):
    """An answer a route gives on purpose that no domain error stands for (a bad header, ...)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.headers = headers


def error_response(
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    return JSONResponse(body, status_code=status, headers=headers)


def domain_answer(error: errors.DomainError) -> tuple[int, str]:
    for cls in type(error).__mro__:
        if cls in _DOMAIN_ANSWERS:
            return _DOMAIN_ANSWERS[cls]  # type: ignore[index]
    return 400, "bad_request"


def _details(error: errors.DomainError) -> dict[str, Any]:
    """The facts a typed error carries that are safe to show (never a secret: errors hold none)."""
    if isinstance(error, errors.InvalidInput):
        return {"field": error.field, "reason": error.reason}
    if isinstance(error, errors.PermissionDenied):
        return {"action": error.action, "needed": error.needed, "role": error.role}
    if isinstance(error, errors.NotFound):
        return {"kind": error.kind, "id": error.key}
    if isinstance(error, errors.NoAgentAvailable):
        return {"required": error.required}
    return {}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(errors.DomainError)
    async def _domain(_: Request, error: errors.DomainError) -> JSONResponse:
        status, code = domain_answer(error)
        if isinstance(error, errors.TenantMismatch):
            # Never say which tenant the record belongs to.
            return error_response(404, code, "not found")
        if status >= 500:
            return error_response(status, code, "internal error: see the server's log")
        headers = UNAUTHORIZED_HEADERS if status == 401 else None
        return error_response(status, code, str(error), _details(error), headers=headers)

    @app.exception_handler(ApiError)
    async def _api(_: Request, error: ApiError) -> JSONResponse:
        return error_response(
            error.status, error.code, error.message, error.details, headers=error.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, error: RequestValidationError) -> JSONResponse:
        problems = [
            {
                "field": ".".join(str(part) for part in problem.get("loc", ()) if part != "body"),
                "message": problem.get("msg", ""),
                "type": problem.get("type", ""),
            }
            for problem in error.errors()
        ]
        fields = ", ".join(p["field"] for p in problems if p["field"]) or "the request"
        return error_response(422, "invalid_request", f"invalid {fields}", {"problems": problems})

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, error: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
            error.status_code, "http_error"
        )
        return error_response(
            error.status_code, code, str(error.detail), headers=getattr(error, "headers", None)
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, error: Exception) -> JSONResponse:
        import logging

        logging.getLogger("indorch.api").exception("unexpected error", exc_info=error)
        return error_response(500, "internal_error", "internal error: see the server's log")
