"""Helpers of the API tests: the one error body, a tenant's records seeded for reading, and an
app served over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI
from httpx import Response

from api.services import Services
from standins.background_server import BackgroundServer
from tests.integration.api.conftest import ApiTenant
from tests.integration.database.support import Seed, seed_tenant


def error_of(response: Response) -> dict[str, Any]:
    """The `{"error": {...}}` body's inside, checked to be the one shape every error has."""
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    return body["error"]


def refused(response: Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = error_of(response)
    assert error["code"] == code, error
    return error


def seeded(wiring: Services, tenant: ApiTenant) -> Seed:
    """One record of every kind (agent, session, job, evaluation, promotion, ...) of `tenant`."""
    return seed_tenant(wiring.database, tenant.slug)


@contextmanager
def served(app: FastAPI) -> Iterator[str]:
    """The app served by uvicorn in a thread (its URL); its live event hub closed afterwards."""
    with BackgroundServer(app) as server:
        try:
            yield server.url
        finally:
            hub = getattr(app.state, "live_event_hub", None)
            if hub is not None:
                hub.close()
