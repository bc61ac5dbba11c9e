"""The served OpenAPI document against the app, by schemathesis: requests generated from each
operation's schema (a bounded number of examples), sent in-process with a valid ADMIN key of a
seeded tenant; no answer is a 5xx, and every answer matches the document (status declared, body
of the declared schema, content type declared). SQLite only, to stay within a minute."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
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
from tests.integration.api.conftest import ApiTenant, _new_tenant
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
def served(sqlite_url: str, tmp_path: Path) -> Iterator[tuple[object, ApiTenant]]:
    """The app on a migrated SQLite database with one seeded tenant, on a host whose runtime
    budget is full (a start is recorded as a wait: nothing is launched)."""
    from resources.database import Database
    from resources.database.migrate import upgrade

    upgrade(sqlite_url)
    database = Database(sqlite_url)
    settings_ = RuntimeSettings(
        root=tmp_path / "runtimes",
        budget=RuntimeBudget(memory_mb=100, runtime_mb=300),
        opencode_config_json="{}",
        allow_unsandboxed=True,
    )
    factory = ServiceFactory(database, runtime_host=RuntimeHost(settings_))
    tenant = _new_tenant(factory)
    seed_tenant(database, tenant.slug)
    app = create_app(Services(database, factory, training_provider=_unavailable_provider))
    with TestClient(app):
        yield app, tenant
    database.dispose()


def _operations(app) -> list:
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


def test_no_operation_answers_a_5xx_or_breaks_the_document(served) -> None:
    app, tenant = served
    operations = _operations(app)
    assert len(operations) >= 40
    headers = tenant.headers(Role.ADMIN)
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
