"""EAP v1 end to end: the API served by uvicorn, the reference external agent (standins) on its
own port, a wave of the supervisor dispatching to it, on SQLite and on PostgreSQL.

The agent registers through the API (token once, stored hashed), heart-beats, receives the
assignment at its endpoint (signed, retried when it answers 503), posts its result, and the
session ends accordingly; a silent agent leaves routing; another tenant's token is refused; the
token shows in no later answer and in no log line.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.services import Services
from domain.clock import utcnow
from domain.session import SessionStatus
from domain.supervision_policy import SupervisionSettings
from domain.tenant import Role
from resources.database import tenant_scope, unit_of_work
from resources.opencode.resource import OpenCodeResource
from services.session_service import SubmitSession
from standins.background_server import BackgroundServer
from standins.eap_agent import ReferenceAgent
from tests.integration.api.conftest import OPERATOR, ApiTenant
from tests.integration.deploy.host import wait_for

REGISTER = "/api/v1/eap/agents"
HEARTBEAT = "/api/v1/eap/heartbeat"
FAST = SupervisionSettings(
    lease=timedelta(seconds=30),
    renew_every=timedelta(seconds=0.2),
    poll_seconds=0.05,
    routing_wait_seconds=0.05,
    routing_refresh_seconds=0.05,
    external_timeout_seconds=2.0,
    external_attempts=3,
    external_retry_seconds=0.05,
    external_heartbeat_ttl_seconds=5.0,
)
WAVE_SECONDS = 30.0


@pytest.fixture
def api_url(client: TestClient) -> Iterator[str]:
    """The app `client` calls, served over HTTP too (for the agent): one app on the wiring."""
    with BackgroundServer(client.app) as server:
        yield server.url


@pytest.fixture
def reference_agent() -> Iterator[tuple[ReferenceAgent, str]]:
    """On a loopback address of its own (127.0.0.0/8 is all loopback): a PostgreSQL run's tests
    share one database, where an earlier test's tenant still holds its agent's server (one
    server serves one tenant), and the OS hands ports out again: on 127.0.0.1 a reused port made
    this agent's endpoint that tenant's server (`server_in_use`, seen once in CI)."""
    agent = ReferenceAgent(heartbeat_seconds=0.2)
    host = "127.{}.{}.{}".format(*secrets.token_bytes(3))
    with BackgroundServer(agent.app, host=host) as server:
        yield agent, f"{server.url}/tasks"
    agent.stop_heartbeats()


def _register(
    client: TestClient, tenant: ApiTenant, endpoint: str, name: str = "ref", role: Role = Role.LEAD
):
    return client.post(
        REGISTER,
        headers=tenant.headers(role),
        json={"name": name, "endpoint_url": endpoint, "capabilities": ["python"], "capacity": 2},
    )


def _connected(
    client: TestClient, api_url: str, tenant: ApiTenant, agent: ReferenceAgent, endpoint: str
) -> tuple[str, str]:
    answer = _register(client, tenant, endpoint)
    assert answer.status_code == 201, answer.text
    agent.connect(api_url, tenant.slug, answer.json()["token"])
    return answer.json()["agent"]["id"], answer.json()["token"]


def _submit(wiring: Services, tenant: ApiTenant, prompt: str = "Add a greeting.") -> str:
    session = wiring.factory.sessions().submit(
        OPERATOR,
        tenant.slug,
        SubmitSession(title="greet", prompt=prompt, required_capabilities=["python"]),
    )
    return session.id


def _run_wave(
    wiring: Services,
    tenant: ApiTenant,
    settings: SupervisionSettings = FAST,
    seconds: float = WAVE_SECONDS,
    clock: Callable | None = None,
) -> list:
    owner = f"wave-{tenant.slug}"
    claim = wiring.factory.sessions().claim_pending(
        tenant.slug, 10, settings.lease, owner_for=lambda _: owner
    )
    assert claim.sessions, "nothing was claimed"
    factory = replace(wiring.factory, clock=clock) if clock else wiring.factory
    wave = factory.supervisor(OpenCodeResource(), tenant.slug, owner, settings)

    async def run() -> list:
        return await asyncio.wait_for(wave.run([s.id for s in claim.sessions]), seconds)

    return asyncio.run(run())


def _session(wiring: Services, tenant: ApiTenant, session_id: str):
    return wiring.factory.sessions().get(OPERATOR, tenant.slug, session_id)


def test_an_external_agent_registers_beats_takes_a_task_and_its_result_ends_the_session(
    client: TestClient,
    wiring: Services,
    tenant_a: ApiTenant,
    api_url: str,
    reference_agent: tuple[ReferenceAgent, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    agent, endpoint = reference_agent
    agent_id, token = _connected(client, api_url, tenant_a, agent, endpoint)
    assert agent.heartbeats >= 1
    agent.refuse_next(1)  # the first POST answers 503: the platform tries again
    session_id = _submit(wiring, tenant_a)

    (outcome,) = _run_wave(wiring, tenant_a)

    assert outcome.status == "COMPLETED", outcome
    assert agent.refused == ["busy"]
    (assignment,) = agent.assignments
    assert assignment["session_id"] == session_id
    # The platform commits the result before it answers: the wave may end before the agent
    # has the answer.
    wait_for(
        "the platform's answer to the agent's result",
        lambda: bool(agent.results),
        within=WAVE_SECONDS,
        every=0.02,
    )
    assert assignment["prompt"] == "Add a greeting."
    assert assignment["protocol"] == "eap/1"
    assert agent.results == [(202, {"session_id": session_id, "status": "COMPLETED"})]
    session = _session(wiring, tenant_a, session_id)
    assert session.status is SessionStatus.COMPLETED
    assert session.agent_id == agent_id
    assert session.result["output"] == "done: greet"
    assert session.metrics.tokens_in == len("Add a greeting.")
    assert session.metrics.tokens_out == 7
    # The same result again (or a late one): the session already ended, 409.
    again = client.post(
        assignment["result_path"],
        json={"assignment_id": assignment["assignment_id"], "status": "failed"},
        headers={"X-Agent-Token": token, "X-Tenant-ID": tenant_a.slug},
    )
    assert again.status_code == 409, again.text
    events = [
        e.event_type for e in wiring.factory.sessions().events(OPERATOR, tenant_a.slug, session_id)
    ]
    assert "agent.assigned" in events
    view = wiring.factory.agents().get(OPERATOR, tenant_a.slug, agent_id)
    assert view.agent.performance.tasks_total == 1
    # The token: stored as its SHA-256 only, never in a log line.
    with tenant_scope(tenant_a.slug), unit_of_work(wiring.database) as uow:
        stored = uow.session.execute(
            text("SELECT token_hash FROM agents WHERE id = :id"), {"id": agent_id}
        ).one()
    assert stored.token_hash != token and len(stored.token_hash) == 64
    assert token not in caplog.text


def test_a_failed_result_fails_the_session(
    client: TestClient,
    wiring: Services,
    tenant_a: ApiTenant,
    api_url: str,
    reference_agent: tuple[ReferenceAgent, str],
) -> None:
    agent, endpoint = reference_agent
    _connected(client, api_url, tenant_a, agent, endpoint)
    session_id = _submit(wiring, tenant_a, prompt="Do it. [eap:fail]")

    (outcome,) = _run_wave(wiring, tenant_a)

    assert outcome.status == "FAILED"
    session = _session(wiring, tenant_a, session_id)
    assert session.error == {"reason": "the reference agent was told to fail"}


def test_an_agent_that_never_accepts_fails_the_session_after_the_retries(
    client: TestClient,
    wiring: Services,
    tenant_a: ApiTenant,
    api_url: str,
    reference_agent: tuple[ReferenceAgent, str],
) -> None:
    agent, endpoint = reference_agent
    _connected(client, api_url, tenant_a, agent, endpoint)
    agent.refuse_next(10)
    session_id = _submit(wiring, tenant_a)

    (outcome,) = _run_wave(wiring, tenant_a)

    assert outcome.status == "FAILED"
    assert agent.refused == ["busy"] * FAST.external_attempts
    assert agent.assignments == []
    reason = wiring.factory.sessions().events(OPERATOR, tenant_a.slug, session_id)[-1].reason
    assert "answered 503 after 3 attempts" in reason


def test_an_agent_that_stops_beating_leaves_routing_and_its_session_waits(
    client: TestClient,
    wiring: Services,
    tenant_a: ApiTenant,
    api_url: str,
    reference_agent: tuple[ReferenceAgent, str],
) -> None:
    agent, endpoint = reference_agent
    _connected(client, api_url, tenant_a, agent, endpoint)
    agent.stop_heartbeats()
    session_id = _submit(wiring, tenant_a)
    # The wave's clock is past the heartbeat TTL: the agent has been silent that long.
    later = utcnow() + timedelta(seconds=FAST.external_heartbeat_ttl_seconds + 1)

    with pytest.raises(TimeoutError):
        _run_wave(wiring, tenant_a, seconds=1.5, clock=lambda: later)

    assert agent.assignments == []
    session = _session(wiring, tenant_a, session_id)
    assert session.status is SessionStatus.QUEUED
    waiting = [
        e.data["reason"]
        for e in wiring.factory.sessions().events(OPERATOR, tenant_a.slug, session_id)
        if e.event_type == "session.waiting"
    ]
    assert waiting and "silent (no heartbeat" in waiting[0]

    # It beats again: back in routing, the session is dispatched.
    agent.beat()
    (outcome,) = _run_wave_on_claimed(wiring, tenant_a, [session_id])
    assert outcome.status == "COMPLETED"


def _run_wave_on_claimed(wiring: Services, tenant: ApiTenant, session_ids: list[str]) -> list:
    owner = f"wave-{tenant.slug}"
    wave = wiring.factory.supervisor(OpenCodeResource(), tenant.slug, owner, FAST)
    return asyncio.run(asyncio.wait_for(wave.run(session_ids), WAVE_SECONDS))


def test_a_silent_agent_holding_a_session_orphans_it(
    client: TestClient,
    wiring: Services,
    tenant_a: ApiTenant,
    api_url: str,
    reference_agent: tuple[ReferenceAgent, str],
) -> None:
    agent, endpoint = reference_agent
    _connected(client, api_url, tenant_a, agent, endpoint)
    agent.vanish_after_next_task()
    settings = replace(FAST, external_heartbeat_ttl_seconds=1.0)
    session_id = _submit(wiring, tenant_a)

    (outcome,) = _run_wave(wiring, tenant_a, settings=settings)

    assert len(agent.assignments) == 1 and agent.results == []
    assert outcome.status == "ORPHANED"
    assert "silent" in _session(wiring, tenant_a, session_id).status_reason


def test_a_session_stopped_while_the_agent_works_refuses_its_late_result(
    client: TestClient,
    wiring: Services,
    tenant_a: ApiTenant,
    api_url: str,
    reference_agent: tuple[ReferenceAgent, str],
) -> None:
    agent, endpoint = reference_agent
    _, token = _connected(client, api_url, tenant_a, agent, endpoint)
    agent.hold_results()
    session_id = _submit(wiring, tenant_a)
    outcomes: list = []
    wave = threading.Thread(target=lambda: outcomes.extend(_run_wave(wiring, tenant_a)))
    wave.start()
    deadline = time.monotonic() + WAVE_SECONDS
    while not agent.assignments and time.monotonic() < deadline:
        time.sleep(0.05)
    (assignment,) = agent.assignments

    wiring.factory.sessions().stop(OPERATOR, tenant_a.slug, session_id)
    wave.join(WAVE_SECONDS)

    assert [o.status for o in outcomes] == ["STOPPED"]
    late = client.post(
        assignment["result_path"],
        json={"assignment_id": assignment["assignment_id"], "status": "completed"},
        headers={"X-Agent-Token": token, "X-Tenant-ID": tenant_a.slug},
    )
    assert late.status_code == 409
    events = [
        e.event_type for e in wiring.factory.sessions().events(OPERATOR, tenant_a.slug, session_id)
    ]
    assert "agent.abort_failed" not in events  # nothing was sent to the agent
    assert _session(wiring, tenant_a, session_id).status is SessionStatus.STOPPED


def test_another_tenants_token_and_sessions_are_refused(
    client: TestClient,
    wiring: Services,
    tenant_a: ApiTenant,
    tenant_b: ApiTenant,
    reference_agent: tuple[ReferenceAgent, str],
) -> None:
    _, endpoint = reference_agent
    answer = _register(client, tenant_a, endpoint)
    token_a = answer.json()["token"]
    # One endpoint serves one tenant: B cannot register A's.
    taken = _register(client, tenant_b, endpoint)
    assert (taken.status_code, taken.json()["error"]["code"]) == (409, "server_in_use")
    # Tenant A's token presented as tenant B's agent: 401, the token not echoed.
    refused = client.post(
        HEARTBEAT, headers={"X-Agent-Token": token_a, "X-Tenant-ID": tenant_b.slug}
    )
    assert refused.status_code == 401
    assert token_a not in refused.text
    assert client.post(HEARTBEAT, headers={"X-Tenant-ID": tenant_a.slug}).status_code == 401
    wrong = {"X-Agent-Token": "eat_not-a-token", "X-Tenant-ID": tenant_a.slug}
    assert client.post(HEARTBEAT, headers=wrong).status_code == 401
    # A result for tenant B's session, with A's token: refused (401 as B, 404 as A).
    b_session = _submit(wiring, tenant_b)
    result = {"assignment_id": "EAP-x", "status": "completed", "output": "mine now"}
    path = f"/api/v1/eap/sessions/{b_session}/result"
    as_b = client.post(
        path, json=result, headers={"X-Agent-Token": token_a, "X-Tenant-ID": tenant_b.slug}
    )
    assert as_b.status_code == 401
    as_a = client.post(
        path, json=result, headers={"X-Agent-Token": token_a, "X-Tenant-ID": tenant_a.slug}
    )
    assert as_a.status_code == 404
    assert _session(wiring, tenant_b, b_session).status is SessionStatus.PENDING
    # And a result for A's own session that was never assigned to this agent: 404.
    a_session = _submit(wiring, tenant_a)
    mine = client.post(
        f"/api/v1/eap/sessions/{a_session}/result",
        json=result,
        headers={"X-Agent-Token": token_a, "X-Tenant-ID": tenant_a.slug},
    )
    assert mine.status_code == 404


def test_registering_needs_a_lead_and_the_token_is_shown_once(
    client: TestClient, wiring: Services, tenant_a: ApiTenant, reference_agent
) -> None:
    _, endpoint = reference_agent
    assert _register(client, tenant_a, endpoint, role=Role.MEMBER).status_code == 403
    assert _register(client, tenant_a, endpoint, role=Role.VIEWER).status_code == 403
    answer = _register(client, tenant_a, endpoint)
    assert answer.status_code == 201
    token = answer.json()["token"]
    assert token.startswith("eat_")
    beat = client.post(HEARTBEAT, headers={"X-Agent-Token": token, "X-Tenant-ID": tenant_a.slug})
    assert beat.status_code == 200 and token not in beat.text
    again = _register(client, tenant_a, endpoint, name="ref")
    assert again.status_code == 409 and token not in again.text
    view = wiring.factory.agents().get(OPERATOR, tenant_a.slug, answer.json()["agent"]["id"])
    assert token not in repr(view) and token not in view.agent.model_dump_json()


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://agents.example.com/tasks",  # plain http off this host
        "ftp://127.0.0.1/tasks",
        "http://user:pw@127.0.0.1:9/tasks",
        "file:///etc/passwd",
    ],
)
def test_endpoint_urls_follow_the_opencode_agents_rules(
    client: TestClient, tenant_a: ApiTenant, endpoint: str
) -> None:
    answer = _register(client, tenant_a, endpoint)
    assert answer.status_code == 422, answer.text
    assert "pw" not in answer.text


def test_unknown_fields_in_a_result_are_refused(
    client: TestClient, tenant_a: ApiTenant, reference_agent
) -> None:
    _, endpoint = reference_agent
    token = _register(client, tenant_a, endpoint).json()["token"]
    answer = client.post(
        "/api/v1/eap/sessions/IND-X/result",
        json={"assignment_id": "EAP-x", "status": "completed", "surprise": 1},
        headers={"X-Agent-Token": token, "X-Tenant-ID": tenant_a.slug},
    )
    assert answer.status_code == 422
