"""Agents through the API: registered, read and steered by the caller's tenant alone; routing's
choice previewed with the reasons of the agents it passes over."""

from __future__ import annotations

import itertools
import random

from fastapi.testclient import TestClient

from api.services import Services
from domain.tenant import Role
from resources.database import tenant_scope, unit_of_work
from tests.integration.api.conftest import ApiTenant
from tests.integration.api.support import refused

AGENTS = "/api/v1/agents"
# Servers are claimed platform-wide (one database serves a whole PostgreSQL run): each test's
# servers are its own.
_PORTS = itertools.count(random.randrange(20_000, 50_000))


def _server() -> str:
    return f"http://127.0.0.1:{next(_PORTS)}"


def _register(client: TestClient, tenant: ApiTenant, name: str, **fields) -> dict:
    body = {"name": name, "server_url": _server(), **fields}
    answer = client.post(AGENTS, json=body, headers=tenant.headers(Role.LEAD))
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_a_lead_registers_and_steers_an_agent_through_its_lifecycle(
    client: TestClient, tenant_a: ApiTenant
) -> None:
    agent = _register(client, tenant_a, "builder", capabilities=["python"], capacity=3)
    assert (agent["status"], agent["active"], agent["tier"]) == ("ACTIVE", True, "NEW")
    assert agent["capabilities"] == ["python"] and agent["active_sessions"] == 0
    one = f"{AGENTS}/{agent['id']}"
    lead = tenant_a.headers(Role.LEAD)
    assert client.get(one, headers=tenant_a.headers(Role.VIEWER)).json()["name"] == "builder"
    assert client.post(f"{one}/drain", headers=lead).json()["status"] == "DRAINING"
    assert client.post(f"{one}/deactivate", headers=lead).json()["status"] == "INACTIVE"
    assert client.post(f"{one}/activate", headers=lead).json()["status"] == "ACTIVE"
    listed = client.get(AGENTS, headers=tenant_a.headers(Role.VIEWER)).json()
    assert [a["id"] for a in listed] == [agent["id"]]
    performance = client.get(f"{one}/performance", headers=tenant_a.headers(Role.VIEWER)).json()
    assert performance["tasks_total"] == 0 and performance["breaker"] == "CLOSED"
    assert client.delete(one, headers=lead).json() == {
        "id": agent["id"],
        "name": "builder",
        "removed": True,
    }
    refused(client.get(one, headers=lead), 404, "not_found")


def test_the_same_name_twice_a_bad_url_and_an_unknown_field_are_refused(
    client: TestClient, tenant_a: ApiTenant
) -> None:
    _register(client, tenant_a, "builder")
    lead = tenant_a.headers(Role.LEAD)
    body = {"name": "builder", "server_url": _server()}
    refused(client.post(AGENTS, json=body, headers=lead), 409, "already_exists")
    body = {"name": "other", "server_url": "ftp://127.0.0.1:4097"}
    error = refused(client.post(AGENTS, json=body, headers=lead), 422, "invalid_input")
    assert error["details"]["field"] == "server_url"
    body = {"name": "other", "server_url": _server(), "pasword_env": "X"}
    error = refused(client.post(AGENTS, json=body, headers=lead), 422, "invalid_request")
    assert "pasword_env" in error["message"]


def test_only_a_lead_or_admin_writes_and_the_operator_alone_allows_permissions(
    client: TestClient, tenant_a: ApiTenant
) -> None:
    agent = _register(client, tenant_a, "builder")
    body = {"name": "other", "server_url": _server()}
    for role in (Role.MEMBER, Role.VIEWER):
        headers = tenant_a.headers(role)
        refused(client.post(AGENTS, json=body, headers=headers), 403, "forbidden")
        for action in ("drain", "deactivate", "activate"):
            answer = client.post(f"{AGENTS}/{agent['id']}/{action}", headers=headers)
            refused(answer, 403, "forbidden")
        refused(client.delete(f"{AGENTS}/{agent['id']}", headers=headers), 403, "forbidden")
    allow = {**body, "permission_policy": "allow"}
    refused(client.post(AGENTS, json=allow, headers=tenant_a.headers(Role.ADMIN)), 403, "forbidden")


def test_another_tenants_agent_is_not_found_and_left_unchanged(
    client: TestClient, wiring: Services, tenant_a: ApiTenant, tenant_b: ApiTenant
) -> None:
    agent = _register(client, tenant_a, "builder")
    b = tenant_b.headers(Role.ADMIN)
    one = f"{AGENTS}/{agent['id']}"
    for answer in (
        client.get(one, headers=b),
        client.get(f"{one}/performance", headers=b),
        client.post(f"{one}/drain", headers=b),
        client.post(f"{one}/deactivate", headers=b),
        client.post(f"{one}/activate", headers=b),
        client.delete(one, headers=b),
    ):
        error = refused(answer, 404, "not_found")
        assert tenant_a.slug not in answer.text
        assert error["details"].get("id", agent["id"]) == agent["id"]
    assert client.get(AGENTS, headers=b).json() == []
    assert client.get(one, headers=tenant_a.headers(Role.VIEWER)).json()["status"] == "ACTIVE"


def test_another_tenant_cannot_register_on_a_server_the_first_holds(
    client: TestClient, tenant_a: ApiTenant, tenant_b: ApiTenant
) -> None:
    held = _register(client, tenant_a, "builder")["server_url"]
    body = {"name": "builder", "server_url": held}
    answer = client.post(AGENTS, json=body, headers=tenant_b.headers(Role.LEAD))
    refused(answer, 409, "server_in_use")
    assert tenant_a.slug not in answer.text


def test_routing_preview_names_the_chosen_agent_and_why_not_the_others(
    client: TestClient, wiring: Services, tenant_a: ApiTenant, tenant_b: ApiTenant
) -> None:
    python = _register(client, tenant_a, "py", capabilities=["python", "docs"])
    rust = _register(client, tenant_a, "rs", capabilities=["rust"])
    drained = _register(client, tenant_a, "old", capabilities=["python"])
    client.post(f"{AGENTS}/{drained['id']}/drain", headers=tenant_a.headers(Role.LEAD))
    _register(client, tenant_b, "b-py", capabilities=["python"])
    viewer = tenant_a.headers(Role.VIEWER)
    preview = client.get(
        f"{AGENTS}/routing-preview", params={"capability": ["Python"]}, headers=viewer
    ).json()
    assert preview["required"] == ["python"]
    assert preview["chosen_agent_id"] == python["id"]
    assert "py" in preview["reason"]
    by_id = {c["agent_id"]: c for c in preview["candidates"]}
    assert set(by_id) == {python["id"], rust["id"], drained["id"]}  # never tenant B's
    assert by_id[python["id"]]["eligible"] and by_id[python["id"]]["score"] > 0
    assert by_id[rust["id"]]["refusal"] == "lacks python"
    assert by_id[drained["id"]]["refusal"] == "draining"
    none = client.get(
        f"{AGENTS}/routing-preview", params={"capability": ["go"]}, headers=viewer
    ).json()
    assert none["chosen_agent_id"] is None
    assert all(c["refusal"] == "lacks go" for c in none["candidates"] if c["name"] != "old")


def test_routing_preview_counts_the_sessions_on_an_agent(
    client: TestClient, wiring: Services, tenant_a: ApiTenant
) -> None:
    from domain.session import Session, SessionStatus

    agent = _register(client, tenant_a, "tiny", capacity=1)
    with tenant_scope(tenant_a.slug), unit_of_work(wiring.database) as uow:
        session = uow.sessions.add(
            Session(tenant_id=tenant_a.slug, title="t", initial_prompt="p", agent_id=agent["id"])
        )
        uow.sessions.save_transition(session, session.transition_to(SessionStatus.RUNNING))
    preview = client.get(f"{AGENTS}/routing-preview", headers=tenant_a.headers(Role.VIEWER)).json()
    (candidate,) = preview["candidates"]
    assert candidate["active_sessions"] == 1 and candidate["refusal"] == "full (1/1)"
    answer = client.delete(f"{AGENTS}/{agent['id']}", headers=tenant_a.headers(Role.LEAD))
    refused(answer, 409, "agent_busy")
