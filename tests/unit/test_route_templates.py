"""The API's latency is labelled by route template, read from its routers: not from its OpenAPI
document, which the first request would otherwise build (~0.3 CPU-s per app; shown not built
by `tests/integration/api/test_health_and_metrics.py`)."""

from api.app import route_templates
from api.metrics import RouteTemplates


def test_a_path_is_labelled_by_its_template_fixed_paths_first() -> None:
    templates = RouteTemplates(lambda: ["/items/{item_id}", "/items/new"])
    assert templates.template("/items/IND-1") == "/items/{item_id}"
    assert templates.template("/items/new") == "/items/new"
    assert templates.template("/nowhere/IND-1") == "unmatched"


def test_the_apis_templates_are_its_routes_under_their_prefixes() -> None:
    templates = RouteTemplates(route_templates)
    assert templates.template("/api/v1/whoami") == "/api/v1/whoami"
    events = "/api/v1/sessions/{session_id}/events"
    assert templates.template("/api/v1/sessions/IND-1/events") == events
    assert templates.template("/health/live") == "/health/live"
    assert templates.template("/docs") == "/docs"
    assert templates.template("/whoami") == "unmatched"
