"""Who calls: `Authorization: Bearer <key>` with `X-Tenant-ID`, which must be the key's tenant.

400 for a malformed tenant id, 401 for a missing, unknown or revoked key (one answer for every
cause, the key never echoed). The `Caller` it yields carries the key's role; the services check
it, so a route never decides a role on its own. A verified caller counts against its tenant's
request rate (`api.bounds`: 429 past it).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request
from starlette.concurrency import run_in_threadpool

from api.errors import UNAUTHORIZED_HEADERS, ApiError
from api.services import Services, services
from domain.caller import Caller
from domain.tenant import slug_problem


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers=UNAUTHORIZED_HEADERS)


async def tenant_id_header(
    x_tenant_id: Annotated[str | None, Header(alias="X-Tenant-ID")] = None,
) -> str:
    if x_tenant_id is None:
        raise ApiError(400, "missing_tenant", "the X-Tenant-ID header is required")
    problem = slug_problem(x_tenant_id)
    if problem:
        raise ApiError(400, "malformed_tenant", f"X-Tenant-ID {problem}")
    return x_tenant_id


async def current_caller(
    request: Request,
    tenant_id: Annotated[str, Depends(tenant_id_header)],
    wiring: Annotated[Services, Depends(services)],
    authorization: Annotated[str | None, Header()] = None,
) -> Caller:
    """Async: a key remembered (`services.authentication`) and the rate counted in Redis cost
    no worker thread; only a key to look up in the database goes to one."""
    if not authorization:
        raise _unauthorized("an API key is required: Authorization: Bearer <key>")
    scheme, _, key = authorization.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise _unauthorized("the Authorization header must be: Bearer <key>")
    authentication = wiring.factory.authentication()
    # KeyRefused (401) when the key is not the tenant's, revoked, or its user or tenant inactive.
    caller = authentication.remembered(tenant_id, key.strip())
    if caller is None:
        caller = await run_in_threadpool(authentication.authenticate, tenant_id, key.strip())
    await request.app.state.rate_limiter.admit_async(tenant_id)  # 429 past the rate (api.bounds)
    return caller


CallerDep = Annotated[Caller, Depends(current_caller)]
