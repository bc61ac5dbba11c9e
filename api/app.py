"""The FastAPI app: `create_app()` for `indorch api serve`, `create_app(services)` in tests.

Routers are listed once here, each in its own module under `api/routes/`, mounted under
`/api/v1` except health and metrics, which monitoring reaches without a key.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from anyio import to_thread
from fastapi import FastAPI
from fastapi.routing import APIRoute
from prometheus_client import CollectorRegistry

from api.bounds import ApiBounds, BodySizeLimit, RateLimiter
from api.errors import ERROR_RESPONSES, install_error_handlers
from api.metrics import (
    FleetCollector,
    LatencyMiddleware,
    RouteTemplates,
    api_latency_histogram,
)
from api.routes import (
    agents,
    api_keys,
    decompositions,
    evaluations,
    events,
    external_agents,
    fine_tuning,
    health,
    promotions,
    repositories,
    runtimes,
    secrets,
    session_patches,
    sessions,
    tenants,
    usage,
    users,
    webhooks,
    whoami,
)
from api.services import Services

API_PREFIX = "/api/v1"

# (router module, mounted under /api/v1?) — one line per resource.
_ROUTERS = [
    (health, False),
    (whoami, True),
    (sessions, True),
    (decompositions, True),
    (agents, True),
    (runtimes, True),
    (repositories, True),
    (secrets, True),
    (session_patches, True),
    (fine_tuning, True),
    (evaluations, True),
    (promotions, True),
    (usage, True),
    (tenants, True),
    (users, True),
    (api_keys, True),
    (events, True),
    (external_agents, True),
    (webhooks, True),
]


def create_app(wiring: Services | None = None, bounds: ApiBounds | None = None) -> FastAPI:
    """The app on `wiring` (default: the configured database and Redis, opened at start-up),
    within `bounds` (default: from the settings)."""
    bounds = bounds or ApiBounds.from_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = wiring is None
        if owned:  # else both were set up with the app, below
            app.state.services = Services.from_environment()
            app.state.rate_limiter = RateLimiter.for_wiring(bounds, app.state.services.redis_url)
        # The routes' blocking work (their transactions) on as many threads as the pool has
        # connections: anyio's 40 would only wait for one, contending for the GIL meanwhile.
        to_thread.current_default_thread_limiter().total_tokens = (
            app.state.services.database.pool_size
        )
        if app.state.services.dagster_home:
            from resources.dagster_daemon_health import preload

            preload(app.state.services.dagster_home)
        # What the app holds from now on lives as long as it: out of the collector's scans
        # (each full collection scanned ~270,000 objects, a pause of the whole server).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            hub = getattr(app.state, "live_event_hub", None)
            if hub is not None:
                hub.close()
                app.state.live_event_hub = None
            await app.state.rate_limiter.aclose()  # this event loop's connection to Redis
            if owned:
                app.state.rate_limiter.close()
                app.state.services.close()

    app = FastAPI(
        title="Industrial Orchestrator API",
        version="1",
        summary="Tenants' sessions, agents, repositories, models and usage; live events.",
        lifespan=lifespan,
    )
    if wiring is not None:
        app.state.services = wiring  # also without the lifespan (TestClient outside `with`)
        app.state.rate_limiter = RateLimiter.for_wiring(bounds, wiring.redis_url)
    app.add_middleware(BodySizeLimit, max_bytes=bounds.max_body_bytes)
    _install_metrics(app)
    install_error_handlers(app)
    for module, versioned in _ROUTERS:
        app.include_router(
            module.router,
            prefix=API_PREFIX if versioned else "",
            responses=ERROR_RESPONSES if versioned else None,
        )
    return app


def route_templates() -> list[str]:
    """Every path the app serves, as its routers declare it, under their prefixes; and the
    documentation's. Not from the OpenAPI document: building that costs each new app ~0.3
    CPU-s at its first request (and leaves out the routes outside the schema)."""
    return [
        *(
            f"{API_PREFIX if versioned else ''}{route.path}"
            for module, versioned in _ROUTERS
            for route in module.router.routes
            if isinstance(route, APIRoute)
        ),
        "/openapi.json",
        "/docs",
    ]


def _install_metrics(app: FastAPI) -> None:
    """The app's own Prometheus registry: the fleet read when scraped, the API's latency."""
    from services.platform_status import PlatformStatus

    registry = CollectorRegistry()

    def status() -> PlatformStatus:
        wiring = app.state.services
        return PlatformStatus(wiring.database, wiring.redis_url, wiring.dagster_home)

    def subscribers() -> int:
        hub = getattr(app.state, "live_event_hub", None)
        return hub.subscribers() if hub is not None else 0

    registry.register(FleetCollector(status, subscribers))
    app.state.metrics_registry = registry
    routes = RouteTemplates(route_templates)
    app.add_middleware(LatencyMiddleware, histogram=api_latency_histogram(registry), routes=routes)
