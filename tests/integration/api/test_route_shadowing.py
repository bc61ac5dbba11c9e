"""No route is shadowed: a request meant for a route never lands on one declared before it.

Starlette tries routes in order, so `GET /agents/{agent_id}` declared before
`GET /agents/routing-preview` would take the preview's requests (agent id "routing-preview").
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.routing import iter_route_contexts

from api.app import create_app

PUBLIC = {"/health/live", "/health/ready", "/metrics", "/openapi.json", "/redoc"}


def _routes(app: FastAPI) -> list[tuple[str, set[str], object]]:
    return [
        (route.path, set(route.methods), route.path_regex)
        for route in iter_route_contexts(app.routes)
        if route.path and route.methods
    ]


def shadowed_routes(app: FastAPI) -> list[str]:
    """Each route whose own path (its {params} taken literally) an earlier route of one of its
    methods matches: that route gets its requests."""
    routes = _routes(app)
    found = []
    for index, (path, methods, _) in enumerate(routes):
        for earlier_path, earlier_methods, regex in routes[:index]:
            if methods & earlier_methods and regex.match(path):  # type: ignore[attr-defined]
                found.append(f"{sorted(methods & earlier_methods)} {path} <- {earlier_path}")
    return found


def test_no_route_of_the_api_is_shadowed() -> None:
    assert shadowed_routes(create_app()) == []


def test_a_literal_route_after_a_parameter_route_is_found_shadowed() -> None:
    router = APIRouter()
    router.add_api_route("/agents/{agent_id}", lambda agent_id: agent_id, methods=["GET"])
    router.add_api_route("/agents/routing-preview", lambda: None, methods=["GET"])
    router.add_api_route("/agents/routing-preview", lambda: None, methods=["POST"])
    app = FastAPI()
    app.include_router(router)
    assert shadowed_routes(app) == ["['GET'] /agents/routing-preview <- /agents/{agent_id}"]


def test_every_route_is_unique_and_the_tenant_routes_sit_under_api_v1() -> None:
    routes = _routes(create_app())
    keys = [(path, method) for path, methods, _ in routes for method in methods]
    assert len(keys) == len(set(keys))
    for path, _, _ in routes:
        assert path.startswith("/api/v1/") or path in PUBLIC or path.startswith("/docs"), path
