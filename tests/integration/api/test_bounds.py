"""The API's bounds: a body over the limit answers 413, a tenant over its request rate 429 with
Retry-After, counted in Redis across API processes and in the process while Redis is away."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from anyio import to_thread
from fastapi.testclient import TestClient

from api.app import create_app
from api.bounds import ApiBounds
from api.services import Services
from domain.tenant import Role
from tests.integration.api.conftest import ApiTenant

SESSIONS = "/api/v1/sessions"
WHOAMI = "/api/v1/whoami"
UNLIMITED = 0
CLOSED_PORT_REDIS = "redis://127.0.0.1:1/0"  # nothing listens there: Redis "down"
WINDOW = 86_400  # one window for the whole test: a window turning over would reset the count


def _error(response) -> dict:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    return body["error"]


def _app(wiring: Services, *, body: int = 1_000_000, rate: int = UNLIMITED, redis=None):
    wired = Services(wiring.database, wiring.factory, redis_url=redis)
    return TestClient(create_app(wired, ApiBounds(body, rate, WINDOW)))


@pytest.fixture
def small_body(wiring: Services) -> Iterator[TestClient]:
    with _app(wiring, body=2_000) as client:
        yield client


def test_a_body_over_the_limit_answers_413_declared_or_streamed(
    small_body: TestClient, tenant_a: ApiTenant
) -> None:
    headers = tenant_a.headers(Role.MEMBER)
    fits = small_body.post(SESSIONS, json={"prompt": "x" * 1_500}, headers=headers)
    assert fits.status_code == 201
    declared = small_body.post(SESSIONS, json={"prompt": "x" * 2_500}, headers=headers)
    assert (declared.status_code, _error(declared)["code"]) == (413, "payload_too_large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: sent chunked
        yield b'{"prompt": "'
        for _ in range(30):
            yield b"x" * 100
        yield b'"}'

    streamed = small_body.post(
        SESSIONS, content=chunks(), headers={**headers, "Content-Type": "application/json"}
    )
    assert (streamed.status_code, _error(streamed)["code"]) == (413, "payload_too_large")
    listed = small_body.get(SESSIONS, headers=headers).json()["items"]
    assert len(listed) == 1  # neither refused body made a session


def test_a_tenant_over_its_rate_gets_429_with_retry_after_and_others_are_not_slowed(
    wiring: Services, tenant_a: ApiTenant, tenant_b: ApiTenant
) -> None:
    with _app(wiring, rate=3) as client:
        stranger = {**tenant_a.headers(Role.VIEWER), "Authorization": "Bearer ind_forged"}
        for _ in range(5):  # refused keys spend none of tenant A's allowance
            assert client.get(WHOAMI, headers=stranger).status_code == 401
        for _ in range(3):
            assert client.get(WHOAMI, headers=tenant_a.headers(Role.VIEWER)).status_code == 200
        over = client.get(WHOAMI, headers=tenant_a.headers(Role.VIEWER))
        assert (over.status_code, _error(over)["code"]) == (429, "rate_limited")
        assert 1 <= int(over.headers["Retry-After"]) <= WINDOW
        assert client.get(WHOAMI, headers=tenant_b.headers(Role.VIEWER)).status_code == 200


def test_the_rate_is_shared_through_redis_by_api_processes(
    wiring: Services, redis_url: str, tenant_a: ApiTenant
) -> None:
    headers = tenant_a.headers(Role.VIEWER)
    with _app(wiring, rate=4, redis=redis_url) as one, _app(wiring, rate=4, redis=redis_url) as two:
        answers = [c.get(WHOAMI, headers=headers).status_code for c in (one, two, one, two, two)]
    assert answers == [200, 200, 200, 200, 429]


def test_with_redis_down_the_process_still_limits_and_never_fails(
    wiring: Services, tenant_a: ApiTenant
) -> None:
    headers = tenant_a.headers(Role.VIEWER)
    with _app(wiring, rate=2, redis=CLOSED_PORT_REDIS) as client:
        answers = [client.get(WHOAMI, headers=headers).status_code for _ in range(3)]
    assert answers == [200, 200, 429]


def test_the_blocking_work_runs_on_as_many_threads_as_the_database_has_pooled_connections(
    wiring: Services,
) -> None:
    """anyio's default is 40 threads: past the pool's connections a thread only waits for one,
    and meanwhile contends for the GIL (on PostgreSQL at 300 submissions/s that cost a fifth of
    the server's CPU per submission)."""
    with TestClient(create_app(wiring)) as client:
        tokens = client.portal.call(lambda: to_thread.current_default_thread_limiter().total_tokens)
    assert tokens == wiring.database.pool_size


def test_what_the_app_holds_from_its_start_is_left_out_of_the_garbage_collectors_scans(
    wiring: Services,
) -> None:
    """Every full collection scanned the ~270,000 objects of the loaded app (FastAPI, pydantic,
    SQLAlchemy, Dagster's modules): a pause of the whole server about once a second at 300
    submissions/s, its p95. Frozen at start-up, a collection scans what came since."""
    gc.unfreeze()
    with TestClient(create_app(wiring)):
        frozen = gc.get_freeze_count()
    gc.unfreeze()
    assert frozen > 10_000
