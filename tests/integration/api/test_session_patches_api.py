"""A session's branch and patch through the API: known branch from the start, the patch once it
pushed one; another tenant's session answers 404."""

from __future__ import annotations

from fastapi.testclient import TestClient

from api.services import Services
from domain.code_repository import CodeRepository
from domain.session import Session, SessionStatus
from domain.tenant import Role
from resources.database import tenant_scope, unit_of_work
from tests.integration.api.conftest import ApiTenant
from tests.integration.api.support import refused

PATCH = "diff --git a/x.py b/x.py\n--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a\n+b\n"


def _session_on_repository(wiring: Services, tenant: str, result: dict | None) -> Session:
    with tenant_scope(tenant), unit_of_work(wiring.database) as uow:
        if uow.code_repositories.find("app") is None:
            uow.code_repositories.add(
                CodeRepository(tenant_id=tenant, name="app", url="https://git.example/app.git")
            )
        session = uow.sessions.add(
            Session(tenant_id=tenant, title="t", initial_prompt="p", repository="app")
        )
        if result is not None:
            for status in (SessionStatus.RUNNING, SessionStatus.COMPLETED):
                uow.sessions.save_transition(session, session.transition_to(status))
            session.result = result
            uow.sessions.save(session)
        return uow.sessions.get(session.id)


def test_a_completed_sessions_branch_and_patch(
    client: TestClient, wiring: Services, tenant_a: ApiTenant, tenant_b: ApiTenant
) -> None:
    branch = f"indorch/{'x'}"
    result = {"repository": "app", "branch": branch, "base": "b0", "commit": "c1", "patch": PATCH}
    session = _session_on_repository(wiring, tenant_a.slug, result)
    viewer = tenant_a.headers(Role.VIEWER)
    url = f"/api/v1/sessions/{session.id}"
    assert client.get(f"{url}/branch", headers=viewer).json() == {
        "session_id": session.id,
        "status": "COMPLETED",
        "repository": "app",
        "branch": branch,
        "remote": "https://git.example/app.git",
        "pushed": True,
        "base": "b0",
        "commit": "c1",
    }
    patch = client.get(f"{url}/patch", headers=viewer)
    assert patch.status_code == 200
    assert patch.headers["content-type"].startswith("text/x-diff")
    assert patch.text == PATCH
    assert "x-patch-truncated-from" not in patch.headers
    for suffix in ("branch", "patch"):
        refused(
            client.get(f"{url}/{suffix}", headers=tenant_b.headers(Role.ADMIN)), 404, "not_found"
        )


def test_a_truncated_patch_says_its_full_length(
    client: TestClient, wiring: Services, tenant_a: ApiTenant
) -> None:
    result = {"branch": "indorch/x", "commit": "c1", "patch": PATCH, "patch_truncated_from": 9000}
    session = _session_on_repository(wiring, tenant_a.slug, result)
    answer = client.get(f"/api/v1/sessions/{session.id}/patch", headers=tenant_a.headers())
    assert (answer.text, answer.headers["x-patch-truncated-from"]) == (PATCH, "9000")


def test_a_pending_session_has_its_branch_but_no_patch_and_a_scratch_session_neither(
    client: TestClient, wiring: Services, tenant_a: ApiTenant
) -> None:
    session = _session_on_repository(wiring, tenant_a.slug, None)
    viewer = tenant_a.headers(Role.VIEWER)
    url = f"/api/v1/sessions/{session.id}"
    branch = client.get(f"{url}/branch", headers=viewer).json()
    assert (branch["branch"], branch["pushed"], branch["commit"]) == (
        f"indorch/{session.id}",
        False,
        None,
    )
    error = refused(client.get(f"{url}/patch", headers=viewer), 422, "invalid_input")
    assert "no patch pushed yet" in error["message"]
    with tenant_scope(tenant_a.slug), unit_of_work(wiring.database) as uow:
        scratch = uow.sessions.add(Session(tenant_id=tenant_a.slug, title="t", initial_prompt="p"))
    for suffix in ("branch", "patch"):
        answer = client.get(f"/api/v1/sessions/{scratch.id}/{suffix}", headers=viewer)
        assert "works on no repository" in refused(answer, 422, "invalid_input")["message"]
    refused(client.get("/api/v1/sessions/SES-nope/patch", headers=viewer), 404, "not_found")
