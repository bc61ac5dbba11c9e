"""Repositories and tenant secrets through the API: a LEAD adds repositories naming a secret an
ADMIN set; the secret's value is write-only."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.services import Services
from domain.tenant import Role
from tests.integration.api.conftest import ApiTenant
from tests.integration.api.support import refused

pytestmark = pytest.mark.usefixtures("secret_key")
REPOS, SECRETS = "/api/v1/repositories", "/api/v1/secrets"


def test_a_lead_adds_reads_and_removes_a_repository(
    client: TestClient, tenant_a: ApiTenant, tenant_b: ApiTenant
) -> None:
    lead, viewer = tenant_a.headers(Role.LEAD), tenant_a.headers(Role.VIEWER)
    body = {
        "name": "app",
        "url": "https://git.example/app.git",
        "default_ref": "develop",
        "credentials_secret": "git-token",
        "setup_script": "make deps",
    }
    added = client.post(REPOS, json=body, headers=lead)
    assert added.status_code == 201, added.text
    assert {k: added.json()[k] for k in body} == body
    assert client.get(f"{REPOS}/app", headers=viewer).json()["url"] == body["url"]
    assert [r["name"] for r in client.get(REPOS, headers=viewer).json()] == ["app"]
    refused(client.post(REPOS, json=body, headers=lead), 409, "already_exists")
    # B may have its own "app"; it never sees A's.
    assert client.get(REPOS, headers=tenant_b.headers(Role.VIEWER)).json() == []
    refused(client.get(f"{REPOS}/app", headers=tenant_b.headers(Role.ADMIN)), 404, "not_found")
    assert client.delete(f"{REPOS}/app", headers=lead).json()["name"] == "app"
    refused(client.get(f"{REPOS}/app", headers=viewer), 404, "not_found")


def test_a_repository_url_with_a_password_is_refused_and_not_echoed(
    client: TestClient, tenant_a: ApiTenant
) -> None:
    body = {"name": "app", "url": "https://bob:hunter2pass@git.example/app.git"}
    answer = client.post(REPOS, json=body, headers=tenant_a.headers(Role.LEAD))
    error = refused(answer, 422, "invalid_input")
    assert error["details"]["field"] == "url"
    assert "hunter2pass" not in answer.text


def test_an_admin_sets_replaces_lists_and_deletes_a_secret_never_reading_it_back(
    client: TestClient, wiring: Services, tenant_a: ApiTenant, tenant_b: ApiTenant
) -> None:
    admin = tenant_a.headers(Role.ADMIN)
    first = client.put(f"{SECRETS}/git-token", json={"value": "v-one-7c1d"}, headers=admin)
    assert first.status_code == 200 and first.json()["name"] == "git-token"
    again = client.put(f"{SECRETS}/git-token", json={"value": "v-two-8e2f"}, headers=admin)
    assert again.json()["updated_at"] >= first.json()["updated_at"]
    listed = client.get(SECRETS, headers=tenant_a.headers(Role.LEAD)).json()
    assert [(s["name"], set(s)) for s in listed] == [
        ("git-token", {"name", "created_at", "updated_at"})
    ]
    # The platform reads the latest value for its own operations; no route does.
    assert wiring.factory.secrets().reveal(tenant_a.slug, "git-token") == "v-two-8e2f"
    assert client.get(SECRETS, headers=tenant_b.headers(Role.ADMIN)).json() == []
    refused(
        client.delete(f"{SECRETS}/git-token", headers=tenant_b.headers(Role.ADMIN)),
        404,
        "not_found",
    )
    for role in (Role.LEAD, Role.MEMBER):
        answer = client.put(
            f"{SECRETS}/git-token", json={"value": "x"}, headers=tenant_a.headers(role)
        )
        refused(answer, 403, "forbidden")
    deleted = client.delete(f"{SECRETS}/git-token", headers=admin)
    assert deleted.status_code == 204 and deleted.content == b""
    assert client.get(SECRETS, headers=admin).json() == []
    refused(client.delete(f"{SECRETS}/git-token", headers=admin), 404, "not_found")
    refused(
        client.put(f"{SECRETS}/git-token", json={"value": "  "}, headers=admin),
        422,
        "invalid_input",
    )
