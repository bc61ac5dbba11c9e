"""Fixtures of the chaos suite: its own PostgreSQL cluster and Redis server (it kills and restarts
them), the real OpenCode binary, HOME and scripted model of the OpenCode tests.

A missing server binary skips the suite and says why; under CI=true (or
INDORCH_REQUIRE_SERVICES=1) it fails instead.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.chaos.private_services import MissingBinary, PrivatePostgres, PrivateRedis
from tests.conftest import services_required
from tests.integration.opencode.conftest import (  # noqa: F401
    opencode_binary,
    opencode_home,
    scripted_model,
    scripted_model_url,
)


def _missing(reason: str) -> None:
    if services_required():
        pytest.fail(f"{reason} (services are required: CI=true)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    try:
        server = PrivatePostgres()
    except MissingBinary as missing:
        _missing(str(missing))
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    try:
        server = PrivateRedis()
    except MissingBinary as missing:
        _missing(str(missing))
    try:
        yield server.start()
    finally:
        server.stop()
