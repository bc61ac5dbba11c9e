"""Helpers of the API tests: the one error body, and a tenant's records seeded for reading."""

from __future__ import annotations

from typing import Any

from httpx import Response

from api.services import Services
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
