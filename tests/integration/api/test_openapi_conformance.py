"""The served OpenAPI document against the app, by schemathesis: requests generated from each
operation's schema (a bounded number of examples), sent in-process with a valid ADMIN key of a
seeded tenant; no answer is a 5xx, and every answer matches the document (status declared, body
of the declared schema, content type declared). SQLite only, to stay within a minute."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from api.services import Services
from domain.runtime import RuntimeBudget
from domain.tenant import Role
from resources.runtime_host.host import RuntimeHost, RuntimeSettings
from services.factory import ServiceFactory
from tests.integration.api.conftest import ApiTenant
from tests.integration.database.support import seed_tenant

pytestmark = [pytest.mark.usefixtures("secret_key"), pytest.mark.timeout(120)]
EXAMPLES_PER_OPERATION = 6
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def _unavailable_provider():
    from domain.errors import InvalidSetting

    raise InvalidSetting("INDORCH_PROVIDER_BASE_URL", "no provider in this test")


@pytest.fixture
def served(wiring: Services, tenant_a: ApiTenant, tmp_path: Path) -> Iterator[FastAPI]:
    """The app with tenant A seeded with a record of every kind, on a host whose runtime budget
    is full (a start is recorded as a wait: nothing is launched)."""
    settings_ = RuntimeSettings(
        root=tmp_path / "runtimes",
        budget=RuntimeBudget(memory_mb=100, runtime_mb=300),
        opencode_config_json="{}",
        allow_unsandboxed=True,
    )
    factory = ServiceFactory(wiring.database, runtime_host=RuntimeHost(settings_))
    seed_tenant(wiring.database, tenant_a.slug)
    app = create_app(Services(wiring.database, factory, training_provider=_unavailable_provider))
    with TestClient(app):
        yield app


def _operations(app: FastAPI) -> list:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = []
    for result in schema.get_all_operations():
        operation = result.ok()
        streams = any(
            "text/event-stream" in (response.get("content") or {})
            for response in operation.definition.raw.get("responses", {}).values()
        )
        if operation.path.startswith("/api/v1/") and not streams:
            operations.append(operation)
    return operations


@pytest.mark.parametrize("wiring", ["sqlite"], indirect=True)
def test_no_operation_answers_a_5xx_or_breaks_the_document(
    served: FastAPI, tenant_a: ApiTenant
) -> None:
    operations = _operations(served)
    assert len(operations) >= 40
    headers = tenant_a.headers(Role.ADMIN)
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        def check(case) -> None:
            case.headers = {**(case.headers or {}), **headers}
            response = case.call()
            case.validate_response(response, checks=CHECKS)

        check()
