"""OpenCode's HTTP Basic auth (``OPENCODE_SERVER_PASSWORD``, user ``opencode``) on a real server."""

from __future__ import annotations

import httpx
import pytest

from standins.opencode_server import OpenCodeServer
from tests.integration.opencode.event_stream import EventStream, lifecycle

pytestmark = pytest.mark.timeout(120)

OPENCODE_PASSWORD = "contract-secret"  # read by the opencode_server fixture


def test_requests_without_credentials_are_401(opencode_server: OpenCodeServer) -> None:
    for method, path in (("GET", "/global/health"), ("POST", "/session"), ("GET", "/session")):
        response = httpx.request(method, f"{opencode_server.url}{path}", json={}, timeout=10)
        assert response.status_code == 401, (method, path, response.text)


def test_wrong_password_is_401(opencode_server: OpenCodeServer) -> None:
    response = httpx.post(
        f"{opencode_server.url}/session", json={}, auth=("opencode", "wrong"), timeout=10
    )
    assert response.status_code == 401


def test_basic_auth_opens_the_api_and_the_event_stream(
    opencode_server: OpenCodeServer,
    opencode_client: httpx.Client,
    opencode_events: EventStream,
) -> None:
    assert opencode_server.auth == ("opencode", OPENCODE_PASSWORD)
    assert opencode_client.get("/global/health").json()["healthy"] is True
    session = opencode_client.post("/session", json={})
    assert session.status_code == 200
    session_id = session.json()["id"]
    prompt = opencode_client.post(
        f"/session/{session_id}/prompt_async",
        json={"parts": [{"type": "text", "text": "[script:text reply=authenticated]"}]},
    )
    assert prompt.status_code == 204
    opencode_events.wait_for_session(session_id, "session.idle", 45)
    assert lifecycle(opencode_events.events(), session_id) == ["status:busy", "status:idle", "idle"]
