"""Sessions over HTTP: submit (idempotent), read, list with filters and cursor pages, steer,
follow up, fork, children, tasks, statistics; every route refuses another tenant's ids (404),
a missing key (401) and a VIEWER writing (403)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from api.services import Services
from domain.session import SessionStatus
from domain.tenant import Role
from resources.database import tenant_scope, unit_of_work
from tests.integration.api.conftest import OPERATOR, ApiTenant

SESSIONS = "/api/v1/sessions"


def _error(response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    return body["error"]


def _submit(client: TestClient, tenant: ApiTenant, role: Role = Role.MEMBER, **fields: Any):
    body = {"prompt": "Fix the parser.", **fields}
    answer = client.post(SESSIONS, json=body, headers=tenant.headers(role))
    assert answer.status_code == 201, answer.text
    return answer.json()


def _move(wiring: Services, tenant: str, session_id: str, *path: SessionStatus) -> None:
    """Walk a session through states as its supervisor would (the state machine's moves)."""
    with tenant_scope(tenant), unit_of_work(wiring.database) as uow:
        session = uow.sessions.get(session_id)
        for target in path:
            uow.sessions.save_transition(session, session.transition_to(target, "test"))


def _add_checkpoints(wiring: Services, tenant: str, session_id: str, count: int) -> None:
    with tenant_scope(tenant), unit_of_work(wiring.database) as uow:
        for step in range(count):
            uow.sessions.add_next_checkpoint(
                session_id,
                {"attempt": 0, "text": f"step {step + 1} done", "files_changed": ["a.py"]},
                at=uow.sessions.get(session_id).created_at,
            )


def test_submit_then_read_it_back_with_defaults_filled(client: TestClient, tenant_a) -> None:
    created = _submit(client, tenant_a, prompt="Fix the parser.\nIt breaks on tabs.", tags=["x"])
    assert created["status"] == "PENDING"
    assert created["title"] == "Fix the parser."
    assert created["priority"] == "MEDIUM" and created["session_type"] == "execution"
    assert created["tenant_id"] == tenant_a.slug and created["tags"] == ["x"]
    answer = client.get(f"{SESSIONS}/{created['id']}", headers=tenant_a.headers(Role.VIEWER))
    assert answer.status_code == 200
    assert answer.json() == created


def test_an_idempotency_key_gives_the_same_session_and_another_request_with_it_409(
    client: TestClient, tenant_a: ApiTenant
) -> None:
    headers = {**tenant_a.headers(Role.MEMBER), "Idempotency-Key": "order-17"}
    first = client.post(SESSIONS, json={"prompt": "Ship it."}, headers=headers)
    again = client.post(SESSIONS, json={"prompt": "Ship it."}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    by_field = client.post(
        SESSIONS,
        json={"prompt": "Ship it.", "idempotency_key": "order-17"},
        headers=tenant_a.headers(Role.MEMBER),
    )
    assert by_field.json()["id"] == first.json()["id"]
    other = client.post(SESSIONS, json={"prompt": "Something else."}, headers=headers)
    assert (other.status_code, _error(other)["code"]) == (409, "idempotency_key_reused")
    clash = client.post(
        SESSIONS, json={"prompt": "Ship it.", "idempotency_key": "order-18"}, headers=headers
    )
    assert clash.status_code == 422
    assert _error(clash)["details"]["field"] == "idempotency_key"


def test_a_prompt_over_10000_characters_or_an_unknown_field_is_refused_naming_it(
    client: TestClient, tenant_a: ApiTenant
) -> None:
    headers = tenant_a.headers(Role.MEMBER)
    long = client.post(SESSIONS, json={"prompt": "x" * 10_001}, headers=headers)
    assert long.status_code == 422
    assert [p["field"] for p in _error(long)["details"]["problems"]] == ["prompt"]
    assert "prompt" in _error(long)["message"]
    assert client.post(SESSIONS, json={"prompt": "x" * 10_000}, headers=headers).status_code == 201
    unknown = client.post(SESSIONS, json={"prompt": "hi", "priorty": "HIGH"}, headers=headers)
    assert unknown.status_code == 422
    assert "priorty" in _error(unknown)["message"]
    for body in ({"prompt": "hi", "priority": "URGENT"}, {"prompt": "   "}, {}):
        assert client.post(SESSIONS, json=body, headers=headers).status_code == 422, body


def test_list_filters_by_status_type_priority_and_tag_and_pages_with_a_cursor(
    client: TestClient, tenant_a: ApiTenant, tenant_b: ApiTenant
) -> None:
    made = [
        _submit(client, tenant_a, prompt="a", session_type="review", tags=["docs"]),
        _submit(client, tenant_a, prompt="b", priority="LOW", tags=["docs", "ci"]),
        _submit(client, tenant_a, prompt="c", priority="HIGH"),
        _submit(client, tenant_a, prompt="d"),
        _submit(client, tenant_a, prompt="e", session_type="review"),
    ]
    _submit(client, tenant_b, prompt="theirs", tags=["docs"])
    headers = tenant_a.headers(Role.VIEWER)
    client.post(f"{SESSIONS}/{made[3]['id']}/cancel", headers=tenant_a.headers(Role.MEMBER))

    def ids(**params: Any) -> list[str]:
        answer = client.get(SESSIONS, params=params, headers=headers)
        assert answer.status_code == 200, answer.text
        return [s["id"] for s in answer.json()["items"]]

    newest_first = [s["id"] for s in reversed(made)]
    assert ids() == newest_first
    assert ids(type="review") == [made[4]["id"], made[0]["id"]]
    assert ids(priority=["LOW", "HIGH"]) == [made[2]["id"], made[1]["id"]]
    assert ids(tag="docs") == [made[1]["id"], made[0]["id"]]
    assert ids(tag="docs", type="review") == [made[0]["id"]]
    assert ids(status="CANCELLED") == [made[3]["id"]]
    assert ids(status=["PENDING"], tag="ci") == [made[1]["id"]]

    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get(SESSIONS, params=params, headers=headers).json()
        seen += [s["id"] for s in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == newest_first
    assert client.get(SESSIONS, params={"limit": 0}, headers=headers).status_code == 422
    assert client.get(SESSIONS, params={"status": "NAPPING"}, headers=headers).status_code == 422


def test_steering_follows_the_session_states_and_refuses_the_wrong_one_with_409(
    client: TestClient, wiring: Services, tenant_a: ApiTenant
) -> None:
    headers = tenant_a.headers(Role.MEMBER)
    session = _submit(client, tenant_a)
    url = f"{SESSIONS}/{session['id']}"
    refused = client.post(f"{url}/pause", headers=headers)
    assert (refused.status_code, _error(refused)["code"]) == (409, "invalid_transition")
    assert "PENDING" in _error(refused)["message"]
    _move(wiring, tenant_a.slug, session["id"], SessionStatus.QUEUED, SessionStatus.RUNNING)
    paused = client.post(f"{url}/pause", json={"reason": "lunch"}, headers=headers).json()
    assert (paused["status"], paused["status_reason"]) == ("PAUSED", "lunch")
    assert client.post(f"{url}/resume", headers=headers).json()["status"] == "RUNNING"
    assert client.post(f"{url}/stop", headers=headers).json()["status"] == "STOPPED"
    assert client.post(f"{url}/cancel", headers=headers).status_code == 409

    failing = _submit(client, tenant_a, max_retries=1)
    again = f"{SESSIONS}/{failing['id']}/retry"
    assert client.post(again, headers=headers).status_code == 409  # PENDING: nothing to retry
    path = (SessionStatus.QUEUED, SessionStatus.RUNNING, SessionStatus.FAILED)
    _move(wiring, tenant_a.slug, failing["id"], *path)
    retried = client.post(again, headers=headers).json()
    assert (retried["status"], retried["retry_count"]) == ("PENDING", 1)
    _move(wiring, tenant_a.slug, failing["id"], *path)
    exhausted = client.post(again, headers=headers)
    assert (exhausted.status_code, _error(exhausted)["code"]) == (409, "retries_exhausted")

    pending = _submit(client, tenant_a)
    cancelled = client.post(f"{SESSIONS}/{pending['id']}/cancel", headers=headers).json()
    assert cancelled["status"] == "CANCELLED"


def test_a_follow_up_is_queued_while_the_session_is_to_run_and_continues_an_ended_one(
    client: TestClient, wiring: Services, tenant_a: ApiTenant
) -> None:
    headers = tenant_a.headers(Role.MEMBER)
    session = _submit(client, tenant_a, prompt="Write the docs.", repository=None)
    url = f"{SESSIONS}/{session['id']}/messages"
    queued = client.post(url, json={"text": "Also the README."}, headers=headers)
    assert queued.status_code == 202
    assert queued.json()["delivery"] == "queued"
    assert queued.json()["session_id"] == session["id"]
    events = wiring.factory.sessions().events(OPERATOR, tenant_a.slug, session["id"])
    assert [e.data["text"] for e in events if e.event_type == "session.message"] == [
        "Also the README."
    ]

    client.post(f"{SESSIONS}/{session['id']}/cancel", headers=headers)
    later = client.post(url, json={"text": "One more thing."}, headers=headers).json()
    assert later["delivery"] == "session" and later["session_id"] != session["id"]
    child = client.get(f"{SESSIONS}/{later['session_id']}", headers=headers).json()
    assert child["parent_id"] == session["id"]
    assert child["prompt"].startswith("One more thing.")
    assert "Write the docs." in child["prompt"]  # told what the first one was asked
    tree = client.get(f"{SESSIONS}/{session['id']}/children", headers=headers).json()
    assert [node["session"]["id"] for node in tree["children"]] == [child["id"]]
    too_long = client.post(url, json={"text": "x" * 10_001}, headers=headers)
    assert too_long.status_code == 422 and "text" in _error(too_long)["message"]


def test_fork_carries_on_from_a_checkpoint_as_a_child_session(
    client: TestClient, wiring: Services, tenant_a: ApiTenant
) -> None:
    headers = tenant_a.headers(Role.MEMBER)
    source = _submit(client, tenant_a, prompt="Port it to Rust.", tags=["port"])
    url = f"{SESSIONS}/{source['id']}"
    none_yet = client.post(f"{url}/fork", json={}, headers=headers)
    assert (none_yet.status_code, _error(none_yet)["details"]["field"]) == (422, "checkpoint")
    _add_checkpoints(wiring, tenant_a.slug, source["id"], 3)
    kept = client.get(f"{url}/checkpoints", headers=tenant_a.headers(Role.VIEWER)).json()
    assert [c["sequence"] for c in kept] == [1, 2, 3]
    assert kept[1]["data"]["text"] == "step 2 done"

    forked = client.post(f"{url}/fork", json={"checkpoint": 2}, headers=headers)
    assert forked.status_code == 201, forked.text
    fork = forked.json()
    assert fork["parent_id"] == source["id"] and fork["tags"] == ["port"]
    assert fork["metadata"]["forked_from"] == {"session": source["id"], "checkpoint": 2}
    assert fork["prompt"].startswith("Port it to Rust.") and "step 2 done" in fork["prompt"]
    latest = client.post(f"{url}/fork", json={"prompt": "Port it to Go."}, headers=headers).json()
    assert latest["metadata"]["forked_from"]["checkpoint"] == 3
    assert latest["prompt"].startswith("Port it to Go.")
    missing = client.post(f"{url}/fork", json={"checkpoint": 9}, headers=headers)
    assert missing.status_code == 404


def test_a_decomposed_request_shows_its_tasks_children_and_the_preview_matches(
    client: TestClient, tenant_a: ApiTenant
) -> None:
    headers = tenant_a.headers(Role.MEMBER)
    prompt = "Ship the docs:\n1. Write the guide\n2. Review the guide"
    preview = client.post("/api/v1/decompositions", json={"prompt": prompt}, headers=headers)
    assert preview.status_code == 200
    assert [s["title"] for s in preview.json()["subtasks"]] == [
        "Write the guide",
        "Review the guide",
    ]
    parent = _submit(
        client,
        tenant_a,
        prompt="Two parts.",
        subtasks=[
            {"key": "write", "title": "Write", "prompt": "Write it."},
            {"key": "check", "title": "Check", "prompt": "Check it.", "depends_on": ["write"]},
        ],
    )
    tasks = client.get(f"{SESSIONS}/{parent['id']}/tasks", headers=headers).json()
    assert [t["title"] for t in tasks] == ["Write", "Check"]
    assert tasks[0]["depends_on"] == [] and tasks[1]["depends_on"] == [tasks[0]["id"]]
    tree = client.get(f"{SESSIONS}/{parent['id']}/children", headers=headers).json()
    assert sorted(n["session"]["id"] for n in tree["children"]) == sorted(
        t["session_id"] for t in tasks
    )
    bad = {"key": "a", "title": "A", "prompt": "a", "depends_on": ["nowhere"]}
    refused = client.post(SESSIONS, json={"prompt": "p", "subtasks": [bad]}, headers=headers)
    assert refused.status_code == 422


def test_statistics_count_the_tenants_sessions_only(
    client: TestClient, tenant_a: ApiTenant, tenant_b: ApiTenant
) -> None:
    _submit(client, tenant_a, session_type="review")
    cancelled = _submit(client, tenant_a, priority="LOW")
    client.post(f"{SESSIONS}/{cancelled['id']}/cancel", headers=tenant_a.headers(Role.MEMBER))
    _submit(client, tenant_b)
    answer = client.get(f"{SESSIONS}/statistics", headers=tenant_a.headers(Role.VIEWER))
    assert answer.json() == {
        "total": 2,
        "by_status": {"PENDING": 1, "CANCELLED": 1},
        "by_type": {"review": 1, "execution": 1},
        "by_priority": {"MEDIUM": 1, "LOW": 1},
    }


def test_critical_takes_a_lead(client: TestClient, tenant_a: ApiTenant) -> None:
    body = {"prompt": "Prod is down.", "priority": "CRITICAL"}
    member = client.post(SESSIONS, json=body, headers=tenant_a.headers(Role.MEMBER))
    assert (member.status_code, _error(member)["details"]["needed"]) == (403, "LEAD")
    lead = client.post(SESSIONS, json=body, headers=tenant_a.headers(Role.LEAD))
    assert lead.status_code == 201 and lead.json()["priority"] == "CRITICAL"


# (method, path under /sessions/{id}, body) of every route on one session.
_READS = [("GET", "", None), ("GET", "/checkpoints", None), ("GET", "/children", None)]
_READS.append(("GET", "/tasks", None))
_WRITES = [
    ("POST", "/cancel", None),
    ("POST", "/pause", None),
    ("POST", "/resume", None),
    ("POST", "/stop", None),
    ("POST", "/retry", None),
    ("POST", "/messages", {"text": "and the tests"}),
    ("POST", "/fork", {}),
]


def test_every_session_route_hides_another_tenants_session_and_checks_key_and_role(
    client: TestClient, wiring: Services, tenant_a: ApiTenant, tenant_b: ApiTenant
) -> None:
    theirs = _submit(client, tenant_b)
    _add_checkpoints(wiring, tenant_b.slug, theirs["id"], 1)
    ours = _submit(client, tenant_a)
    for method, suffix, body in _READS + _WRITES:
        url = f"{SESSIONS}/{theirs['id']}{suffix}"
        answer = client.request(method, url, json=body, headers=tenant_a.headers(Role.ADMIN))
        assert answer.status_code == 404, (method, suffix, answer.text)
        assert _error(answer)["code"] == "not_found"
        assert tenant_b.slug not in answer.text
        unknown = f"{SESSIONS}/IND-00000000000000000000000000{suffix}"
        same = client.request(method, unknown, json=body, headers=tenant_a.headers(Role.ADMIN))
        assert (same.status_code, _error(same)["code"]) == (404, "not_found")
        no_key = client.request(
            method,
            f"{SESSIONS}/{ours['id']}{suffix}",
            json=body,
            headers={"X-Tenant-ID": tenant_a.slug},
        )
        assert no_key.status_code == 401
    for method, suffix, body in _WRITES:
        url = f"{SESSIONS}/{ours['id']}{suffix}"
        answer = client.request(method, url, json=body, headers=tenant_a.headers(Role.VIEWER))
        assert (answer.status_code, _error(answer)["code"]) == (403, "forbidden"), suffix
    for method, suffix, _body in _READS:
        url = f"{SESSIONS}/{ours['id']}{suffix}"
        assert client.request(method, url, headers=tenant_a.headers(Role.VIEWER)).is_success
    viewer = tenant_a.headers(Role.VIEWER)
    assert client.post(SESSIONS, json={"prompt": "p"}, headers=viewer).status_code == 403
    assert client.get(SESSIONS, headers={"X-Tenant-ID": tenant_a.slug}).status_code == 401
    assert client.get(f"{SESSIONS}/statistics", headers={}).status_code in {400, 401}
    untouched = client.get(f"{SESSIONS}/{theirs['id']}", headers=tenant_b.headers(Role.VIEWER))
    assert untouched.json()["status"] == "PENDING"  # tenant A's writes never reached it
