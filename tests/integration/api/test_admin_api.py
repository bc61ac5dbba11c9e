"""The tenant's own administration through the API: its tenant read (never another's, and no
route creates or deletes one), its users, and its API keys, a new key answered once."""

from __future__ import annotations

from fastapi.testclient import TestClient

from domain.tenant import Role
from tests.integration.api.conftest import ApiTenant
from tests.integration.api.support import refused

V1 = "/api/v1"


def test_a_caller_reads_its_own_tenant_and_no_route_writes_tenants(
    client: TestClient, tenant_a: ApiTenant, tenant_b: ApiTenant
) -> None:
    viewer = tenant_a.headers(Role.VIEWER)
    (own,) = client.get(f"{V1}/tenants", headers=viewer).json()
    assert (own["slug"], own["active"]) == (tenant_a.slug, True)
    assert client.get(f"{V1}/tenants/{tenant_a.slug}", headers=viewer).json() == own
    answer = client.get(f"{V1}/tenants/{tenant_b.slug}", headers=tenant_a.headers(Role.ADMIN))
    assert refused(answer, 404, "not_found")["message"] == "not found"
    admin = tenant_a.headers(Role.ADMIN)
    for method, url in (("POST", f"{V1}/tenants"), ("DELETE", f"{V1}/tenants/{tenant_a.slug}")):
        answer = client.request(method, url, json={"slug": "x", "name": "x"}, headers=admin)
        assert answer.status_code == 405, (method, url)
    assert (
        client.get(f"{V1}/tenants/{tenant_b.slug}", headers=tenant_b.headers()).status_code == 200
    )


def test_an_admin_renames_its_tenant_and_nothing_the_operator_sets(
    client: TestClient, tenant_a: ApiTenant, tenant_b: ApiTenant
) -> None:
    url, admin = f"{V1}/tenants/{tenant_a.slug}", tenant_a.headers(Role.ADMIN)
    before = client.get(url, headers=admin).json()
    renamed = client.patch(url, json={"name": "Acme Robotics"}, headers=admin)
    assert renamed.json() == {**before, "name": "Acme Robotics"}
    for body in ({"active": False}, {"monthly_token_budget": 10**9}, {"slug": "other"}):
        answer = client.patch(url, json={"name": "x", **body}, headers=admin)
        refused(answer, 422, "invalid_request")
    refused(
        client.patch(url, json={"name": "x"}, headers=tenant_a.headers(Role.LEAD)), 403, "forbidden"
    )
    other = client.patch(f"{V1}/tenants/{tenant_b.slug}", json={"name": "x"}, headers=admin)
    refused(other, 404, "not_found")
    assert client.get(url, headers=admin).json() == renamed.json()
    assert (
        client.get(f"{V1}/tenants/{tenant_b.slug}", headers=tenant_b.headers()).json()["name"]
        == tenant_b.slug
    )


def test_an_admin_creates_changes_suspends_and_reactivates_users(
    client: TestClient, tenant_a: ApiTenant, tenant_b: ApiTenant
) -> None:
    admin = tenant_a.headers(Role.ADMIN)
    created = client.post(
        f"{V1}/users",
        json={"email": "Dev@Example.com", "name": "Dev", "role": "LEAD"},
        headers=admin,
    )
    assert created.status_code == 201, created.text
    user = created.json()
    assert (user["email"], user["role"], user["active"]) == ("dev@example.com", "LEAD", True)
    again = client.post(f"{V1}/users", json={"email": "dev@example.com"}, headers=admin)
    refused(again, 409, "already_exists")
    changed = client.patch(f"{V1}/users/{user['id']}", json={"role": "MEMBER"}, headers=admin)
    assert changed.json()["role"] == "MEMBER"
    suspended = client.patch(f"{V1}/users/dev@example.com", json={"active": False}, headers=admin)
    assert suspended.json()["active"] is False
    both = client.patch(
        f"{V1}/users/dev@example.com", json={"active": True, "role": "VIEWER"}, headers=admin
    ).json()
    assert (both["active"], both["role"]) == (True, "VIEWER")
    unchanged = client.patch(f"{V1}/users/dev@example.com", json={}, headers=admin).json()
    assert unchanged == both
    listed = client.get(f"{V1}/users", headers=tenant_a.headers(Role.VIEWER)).json()
    assert [u["email"] for u in listed] == ["dev@example.com"]
    assert client.get(f"{V1}/users", headers=tenant_b.headers(Role.VIEWER)).json() == []
    bad = client.post(f"{V1}/users", json={"email": "not-an-address"}, headers=admin)
    refused(bad, 422, "invalid_input")
    refused(
        client.patch(f"{V1}/users/nobody@example.com", json={}, headers=admin), 404, "not_found"
    )


def test_a_created_key_is_answered_once_works_and_stops_when_revoked(
    client: TestClient, tenant_a: ApiTenant
) -> None:
    admin = tenant_a.headers(Role.ADMIN)
    created = client.post(f"{V1}/api-keys", json={"name": "ci", "role": "LEAD"}, headers=admin)
    assert created.status_code == 201, created.text
    key = created.json()
    assert key["key"].startswith(key["prefix"]) and key["role"] == "LEAD"
    headers = {"Authorization": f"Bearer {key['key']}", "X-Tenant-ID": tenant_a.slug}
    assert client.get(f"{V1}/whoami", headers=headers).json()["role"] == "LEAD"
    listed = client.get(f"{V1}/api-keys", headers=tenant_a.headers(Role.VIEWER))
    assert key["id"] in {k["id"] for k in listed.json()}
    assert key["key"] not in listed.text and "key" not in listed.json()[0]
    # A LEAD's key cannot make keys, not even lesser ones.
    refused(client.post(f"{V1}/api-keys", json={"name": "x"}, headers=headers), 403, "forbidden")
    revoked = client.delete(f"{V1}/api-keys/{key['id']}", headers=admin).json()
    assert revoked["revoked_at"] is not None and "key" not in revoked
    refused(client.get(f"{V1}/whoami", headers=headers), 401, "unauthorized")


def test_a_key_for_a_user_is_capped_at_its_role(client: TestClient, tenant_a: ApiTenant) -> None:
    admin = tenant_a.headers(Role.ADMIN)
    client.post(f"{V1}/users", json={"email": "m@example.com", "role": "MEMBER"}, headers=admin)
    above = {"name": "k", "role": "ADMIN", "user_email": "m@example.com"}
    error = refused(client.post(f"{V1}/api-keys", json=above, headers=admin), 422, "invalid_input")
    assert error["details"]["field"] == "role"
    same = {"name": "k", "role": "MEMBER", "user_email": "m@example.com"}
    assert client.post(f"{V1}/api-keys", json=same, headers=admin).status_code == 201
    nobody = {"name": "k", "user_email": "nobody@example.com"}
    refused(client.post(f"{V1}/api-keys", json=nobody, headers=admin), 404, "not_found")
