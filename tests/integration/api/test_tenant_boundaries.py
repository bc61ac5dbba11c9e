"""Every route of the tenant's resources, across two seeded tenants: 401 without a key, 403 for a
role below the route's (a VIEWER writing), 404 for the other tenant's ids (the record left as it
was, its tenant never named), and no secret value in any answer."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.routes import (
    agents,
    api_keys,
    evaluations,
    fine_tuning,
    promotions,
    repositories,
    runtimes,
    secrets,
    session_patches,
    tenants,
    usage,
    users,
)
from api.services import Services
from domain.tenant import Role
from resources.database import tenant_scope, unit_of_work
from tests.integration.api.conftest import ApiTenant
from tests.integration.api.support import error_of, refused, seeded
from tests.integration.database.support import Seed

pytestmark = pytest.mark.usefixtures("secret_key")
MODULES = (
    agents,
    api_keys,
    evaluations,
    fine_tuning,
    promotions,
    repositories,
    runtimes,
    secrets,
    session_patches,
    tenants,
    usage,
    users,
)
V1 = "/api/v1"


def _routes() -> list[tuple[str, str]]:
    """(method, path) of every route these modules declare, as the app serves them."""
    from fastapi.routing import iter_route_contexts

    endpoints = {route.endpoint for module in MODULES for route in module.router.routes}
    return [
        (method, route.path)
        for route in iter_route_contexts(create_app().routes)
        if route.endpoint in endpoints
        for method in route.methods
    ]


def test_every_route_answers_401_without_a_key_or_with_a_wrong_one(
    client: TestClient, tenant_a: ApiTenant
) -> None:
    routes = _routes()
    assert len(routes) >= 40
    for method, path in routes:
        url = path.replace("{", "").replace("}", "")  # any id: the key is checked first
        for headers in (
            {"X-Tenant-ID": tenant_a.slug},
            {"X-Tenant-ID": tenant_a.slug, "Authorization": "Bearer iok_wrong"},
        ):
            answer = client.request(method, url, headers=headers, params={"month": "2026-01"})
            assert answer.status_code == 401, (method, path, answer.text)
            assert error_of(answer)["code"] == "unauthorized"


def _writes(a: Seed) -> list[tuple[str, str, dict | None]]:
    """A valid request of every write route, on tenant A's records."""
    agent, job = f"{V1}/agents/{a.agent.id}", f"{V1}/fine-tuning-jobs/{a.job.id}"
    return [
        ("POST", f"{V1}/agents", {"name": "n", "server_url": "http://127.0.0.1:4100"}),
        ("POST", f"{agent}/drain", None),
        ("POST", f"{agent}/deactivate", None),
        ("POST", f"{agent}/activate", None),
        ("DELETE", agent, None),
        ("POST", f"{V1}/runtimes/start", None),
        ("POST", f"{V1}/runtimes/stop", None),
        ("POST", f"{V1}/repositories", {"name": "web", "url": "https://git.example/web"}),
        ("DELETE", f"{V1}/repositories/{a.own_repository.name}", None),
        ("PUT", f"{V1}/secrets/deploy-key", {"value": "s3cr3t-value"}),
        ("DELETE", f"{V1}/secrets/own-{a.tenant}", None),
        ("POST", f"{job}/cancel", None),
        ("POST", f"{V1}/promotions", {"evaluation_id": a.evaluation.id}),
        ("POST", f"{V1}/promotions/rollback", None),
        ("PATCH", f"{V1}/tenants/{a.tenant}", {"name": "renamed"}),
        ("POST", f"{V1}/users", {"email": "new@example.com"}),
        ("PATCH", f"{V1}/users/{a.own_user.email}", {"role": "VIEWER"}),
        ("POST", f"{V1}/api-keys", {"name": "ci"}),
        ("DELETE", f"{V1}/api-keys/{a.api_key.id}", None),
    ]


def test_a_viewer_writing_anywhere_is_refused_403_and_nothing_changes(
    client: TestClient, wiring: Services, tenant_a: ApiTenant
) -> None:
    a = seeded(wiring, tenant_a)
    writes = _writes(a)
    write_routes = {(m, p) for m, p in _routes() if m != "GET"}
    assert len(writes) == len(write_routes)  # every write route is in the table
    viewer = tenant_a.headers(Role.VIEWER)
    for method, url, body in writes:
        answer = client.request(method, url, json=body, headers=viewer)
        assert answer.status_code == 403, (method, url, answer.text)
        assert error_of(answer)["details"]["role"] == "VIEWER"
    _unchanged(client, tenant_a, a)


def test_reads_above_a_viewer_are_refused_to_it(
    client: TestClient, wiring: Services, tenant_a: ApiTenant
) -> None:
    viewer, member = tenant_a.headers(Role.VIEWER), tenant_a.headers(Role.MEMBER)
    refused(client.get(f"{V1}/secrets", headers=member), 403, "forbidden")  # LEAD up
    for url in (f"{V1}/usage", f"{V1}/usage/export"):  # ADMIN: billing
        answer = client.get(url, params={"month": "2026-01"}, headers=tenant_a.headers(Role.LEAD))
        refused(answer, 403, "forbidden")
    assert client.get(f"{V1}/secrets", headers=tenant_a.headers(Role.LEAD)).status_code == 200
    assert client.get(f"{V1}/agents", headers=viewer).status_code == 200


def test_the_other_tenants_ids_answer_404_everywhere_and_its_records_stay(
    client: TestClient, wiring: Services, tenant_a: ApiTenant, tenant_b: ApiTenant
) -> None:
    a = seeded(wiring, tenant_a)
    seeded(wiring, tenant_b)  # B has records of every kind too (some of the same names)
    b = tenant_b.headers(Role.ADMIN)
    agent, job = f"{V1}/agents/{a.agent.id}", f"{V1}/fine-tuning-jobs/{a.job.id}"
    session = f"{V1}/sessions/{a.session.id}"
    requests: list[tuple[str, str, dict | None]] = [
        ("GET", agent, None),
        ("GET", f"{agent}/performance", None),
        ("POST", f"{agent}/drain", None),
        ("POST", f"{agent}/deactivate", None),
        ("POST", f"{agent}/activate", None),
        ("DELETE", agent, None),
        ("GET", f"{V1}/repositories/{a.own_repository.name}", None),
        ("DELETE", f"{V1}/repositories/{a.own_repository.name}", None),
        ("DELETE", f"{V1}/secrets/own-{a.tenant}", None),
        ("GET", f"{session}/branch", None),
        ("GET", f"{session}/patch", None),
        ("GET", job, None),
        ("POST", f"{job}/cancel", None),
        ("GET", f"{V1}/evaluations/{a.evaluation.id}", None),
        ("POST", f"{V1}/promotions", {"evaluation_id": a.evaluation.id}),
        ("GET", f"{V1}/tenants/{a.tenant}", None),
        ("PATCH", f"{V1}/tenants/{a.tenant}", {"name": "renamed"}),
        ("PATCH", f"{V1}/users/{a.own_user.email}", {"role": "VIEWER"}),
        ("PATCH", f"{V1}/users/{a.user.id}", {"active": False}),
        ("DELETE", f"{V1}/api-keys/{a.api_key.id}", None),
    ]
    for method, url, body in requests:
        answer = client.request(method, url, json=body, headers=b)
        assert answer.status_code == 404, (method, url, answer.text)
        assert error_of(answer)["code"] == "not_found"
        echoed = answer.text  # the id asked for may be echoed; nothing else may name A
        for segment in url.split("/"):
            echoed = echoed.replace(segment, "") if segment else echoed
        assert tenant_a.slug not in echoed, answer.text
    listed = {
        "agents": [x["id"] for x in client.get(f"{V1}/agents", headers=b).json()],
        "jobs": [x["id"] for x in client.get(f"{V1}/fine-tuning-jobs", headers=b).json()],
        "evaluations": [x["id"] for x in client.get(f"{V1}/evaluations", headers=b).json()],
        "keys": [x["id"] for x in client.get(f"{V1}/api-keys", headers=b).json()],
        "users": [x["id"] for x in client.get(f"{V1}/users", headers=b).json()],
        "tenants": [x["slug"] for x in client.get(f"{V1}/tenants", headers=b).json()],
    }
    a_ids = {a.agent.id, a.job.id, a.evaluation.id, a.api_key.id, a.user.id, a.tenant}
    assert not a_ids & {i for ids in listed.values() for i in ids}, listed
    assert listed["tenants"] == [tenant_b.slug]
    _unchanged(client, tenant_a, a)


def _unchanged(client: TestClient, tenant: ApiTenant, a: Seed) -> None:
    admin = tenant.headers(Role.ADMIN)
    assert client.get(f"{V1}/tenants/{a.tenant}", headers=admin).json()["name"] != "renamed"
    assert client.get(f"{V1}/agents/{a.agent.id}", headers=admin).json()["status"] == "ACTIVE"
    assert client.get(f"{V1}/fine-tuning-jobs/{a.job.id}", headers=admin).json()["status"] == (
        "QUEUED"
    )
    keys = {k["id"]: k for k in client.get(f"{V1}/api-keys", headers=admin).json()}
    assert keys[a.api_key.id]["revoked_at"] is None
    users = {u["email"]: u for u in client.get(f"{V1}/users", headers=admin).json()}
    assert users[a.own_user.email]["role"] == a.own_user.role.value
    assert users[a.user.email]["active"] is True
    names = [r["name"] for r in client.get(f"{V1}/repositories", headers=admin).json()]
    assert a.own_repository.name in names
    assert client.get(f"{V1}/promotions/current", headers=admin).json()["current"]["id"] == (
        a.promotion.id
    )


def test_no_answer_ever_holds_a_secret_value(
    client: TestClient, wiring: Services, tenant_a: ApiTenant, tenant_b: ApiTenant
) -> None:
    a = seeded(wiring, tenant_a)
    value = "tok-9f2c61d0e7-never-shown"
    admin = tenant_a.headers(Role.ADMIN)
    put = client.put(f"{V1}/secrets/deploy-key", json={"value": value}, headers=admin)
    assert put.status_code == 200 and set(put.json()) == {"name", "created_at", "updated_at"}
    answers = [put]
    # Refusals that carry the value: too long, an unknown field, another tenant, a viewer.
    answers.append(client.put(f"{V1}/secrets/x", json={"value": value * 20_000}, headers=admin))
    answers.append(
        client.put(f"{V1}/secrets/x", json={"value": value, "note": value}, headers=admin)
    )
    answers.append(client.put(f"{V1}/secrets/1bad", json={"value": value}, headers=admin))
    viewer = tenant_a.headers(Role.VIEWER)
    answers.append(client.put(f"{V1}/secrets/x", json={"value": value}, headers=viewer))
    assert [r.status_code for r in answers[1:]] == [422, 422, 422, 403]
    # Every read of A's and B's, the repository naming the secret among them.
    client.post(
        f"{V1}/repositories",
        json={"name": "web", "url": "https://git.example/web", "credentials_secret": "deploy-key"},
        headers=admin,
    )
    for method, path in _routes():
        if method != "GET":
            continue
        url = (
            path.replace("{agent_id}", a.agent.id)
            .replace("{name}", "web")
            .replace("{session_id}", a.session.id)
            .replace("{job_id}", a.job.id)
            .replace("{evaluation_id}", a.evaluation.id)
            .replace("{slug}", a.tenant)
        )
        for headers in (admin, tenant_b.headers(Role.ADMIN)):
            answers.append(client.get(url, params={"month": "2026-01"}, headers=headers))
    assert any(r.status_code == 200 and "deploy-key" in r.text for r in answers)
    for answer in answers:
        assert value not in answer.text, answer.request.url
    with tenant_scope(tenant_a.slug), unit_of_work(wiring.database) as uow:
        assert value not in uow.secrets.sealed("deploy-key")
