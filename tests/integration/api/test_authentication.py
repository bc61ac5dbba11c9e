"""Who may call: a key of the tenant named in X-Tenant-ID, else 400 / 401 with one error body."""

from __future__ import annotations

from fastapi.testclient import TestClient

from domain.tenant import Role
from tests.integration.api.conftest import ApiTenant

WHOAMI = "/api/v1/whoami"


def _error(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    return body["error"]


def test_a_key_of_the_named_tenant_is_its_caller_with_the_keys_role(
    client: TestClient, tenant_a: ApiTenant
) -> None:
    for role in Role:
        answer = client.get(WHOAMI, headers=tenant_a.headers(role))
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"tenant_id": tenant_a.slug, "role": role.value}


def test_no_key_a_wrong_scheme_or_an_unknown_key_answers_401_without_echoing_it(
    client: TestClient, tenant_a: ApiTenant
) -> None:
    cases = [
        {"X-Tenant-ID": tenant_a.slug},
        {"X-Tenant-ID": tenant_a.slug, "Authorization": f"Basic {tenant_a.keys[Role.ADMIN]}"},
        {"X-Tenant-ID": tenant_a.slug, "Authorization": "Bearer ind_not-a-real-key"},
    ]
    for headers in cases:
        answer = client.get(WHOAMI, headers=headers)
        assert answer.status_code == 401, headers
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
        assert _error(answer)["code"] == "unauthorized"
        assert "not-a-real-key" not in answer.text
        assert tenant_a.keys[Role.ADMIN] not in answer.text


def test_a_key_presented_for_another_tenant_answers_401(
    client: TestClient, tenant_a: ApiTenant, tenant_b: ApiTenant
) -> None:
    headers = {**tenant_a.headers(Role.ADMIN), "X-Tenant-ID": tenant_b.slug}
    answer = client.get(WHOAMI, headers=headers)
    assert answer.status_code == 401
    assert tenant_b.slug not in _error(answer)["message"]


def test_a_revoked_key_answers_401(client: TestClient, wiring, tenant_a: ApiTenant) -> None:
    from tests.integration.api.conftest import OPERATOR

    keys = wiring.factory.api_keys()
    key, plaintext = keys.create(OPERATOR, tenant_a.slug, "short-lived", role=Role.ADMIN)
    headers = {"Authorization": f"Bearer {plaintext}", "X-Tenant-ID": tenant_a.slug}
    assert client.get(WHOAMI, headers=headers).status_code == 200
    keys.revoke(OPERATOR, tenant_a.slug, key.id)
    assert client.get(WHOAMI, headers=headers).status_code == 401


def test_a_malformed_or_missing_tenant_id_answers_400(
    client: TestClient, tenant_a: ApiTenant
) -> None:
    key = tenant_a.headers(Role.ADMIN)["Authorization"]
    for tenant_id in ["Acme!", "../etc", "x" * 64, ""]:
        answer = client.get(WHOAMI, headers={"Authorization": key, "X-Tenant-ID": tenant_id})
        assert answer.status_code == 400, tenant_id
        assert _error(answer)["code"] in {"malformed_tenant", "missing_tenant"}
    answer = client.get(WHOAMI, headers={"Authorization": key})
    assert (answer.status_code, _error(answer)["code"]) == (400, "missing_tenant")


def test_liveness_needs_no_key_and_an_unknown_route_answers_the_error_body(
    client: TestClient,
) -> None:
    assert client.get("/health/live").json() == {"status": "live"}
    answer = client.get("/api/v1/no-such-route")
    assert (answer.status_code, _error(answer)["code"]) == (404, "not_found")
