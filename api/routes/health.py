"""Health for monitoring, no key needed: liveness, readiness (the dependencies, asked now) and
Prometheus metrics. Nothing here names a secret, an address or a tenant's record."""

from __future__ import annotations

from typing import Annotated

from anyio import to_thread
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.services import Services, services
from services.platform_status import PlatformStatus

router = APIRouter(tags=["health"])


def platform_status(wiring: Annotated[Services, Depends(services)]) -> PlatformStatus:
    return PlatformStatus(wiring.database, wiring.redis_url, wiring.dagster_home)


@router.get("/health/live")
def live() -> dict[str, str]:
    return {"status": "live"}


@router.get(
    "/health/ready",
    responses={503: {"description": "down: the database does not answer"}},
)
async def ready(status: Annotated[PlatformStatus, Depends(platform_status)]) -> JSONResponse:
    """ok or degraded (Redis, the Dagster daemon or some agents down): 200; down: 503."""
    readiness = await to_thread.run_sync(status.readiness)
    return JSONResponse(
        readiness.model_dump(mode="json"), status_code=200 if readiness.ready else 503
    )


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """The Prometheus text format (see `api.metrics` for the series)."""
    body = await to_thread.run_sync(generate_latest, request.app.state.metrics_registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
