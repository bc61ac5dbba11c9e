"""`indorch session ...` as operators run it: a real database, exit codes, processes left running.

Contract: a session is submitted through the session service (title defaults to the prompt's first
line); bad input (blank title, oversized prompt, unknown tenant or session, invalid priority or
type, a refused transition, an exhausted token budget) prints one line on stderr, exits 2 and
writes nothing; the same idempotency key and request give the same session, another request with
a used key is refused; a steering command names the status it needs; a follow-up message is
queued on a session that is to run or runs and continues an ended one as a child session;
`--wait` exits 0 on success, 1 on any other end, 3 when it gives up; `events --follow` ends when
the session does; stopping a session that runs on a real OpenCode server aborts the agent's turn
there.

The commands run by their entry point in this process (`ok`, `refused`, `indorch`: the support
module's in-process runner), those left running (`--wait`, `--follow`) in a process of their own
while the test changes the session; `--wait` until the session completes runs the installed
`indorch` script, end to end.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from domain.session import SessionStatus
from resources.database import Database, tenant_scope, unit_of_work
from services.session_service import SessionService
from standins.opencode_server import OpenCodeServer
from tests.integration.cli.support import PASSWORD_ENV, PASSWORD_VAR, Background, one_line_error
from tests.integration.cli.support import indorch_in_process as indorch
from tests.integration.cli.support import ok_in_process as ok
from tests.integration.cli.support import refused_in_process as refused

S = SessionStatus
PROMPT = "Fix the flaky login test\n\nIt fails one run in ten on CI."


def submit(url: str, *args: str, tenant: str = "acme") -> dict:
    return json.loads(ok(url, "session", "submit", "--tenant", tenant, "--json", *args))


def show(url: str, session_id: str, tenant: str = "acme") -> dict:
    return json.loads(ok(url, "session", "show", "--tenant", tenant, session_id, "--json"))


def events(url: str, session_id: str, *args: str) -> list[dict]:
    return json.loads(ok(url, "session", "events", "-t", "acme", session_id, "--json", *args))


def session_count(url: str) -> int:
    engine = create_engine(url)
    with engine.connect() as connection:
        count = connection.scalar(text("SELECT count(*) FROM sessions"))
    engine.dispose()
    return int(count)


def move(url: str, session_id: str, *statuses: SessionStatus, **fields: object) -> None:
    """Test setup: walk a session through allowed transitions, as a supervisor would."""
    database = Database(url)
    with tenant_scope("acme"), unit_of_work(database) as uow:
        session = uow.sessions.get(session_id)
        for name, value in fields.items():
            setattr(session, name, value)
        if fields:
            uow.sessions.save(session)
        for status in statuses:
            uow.sessions.save_transition(session, session.transition_to(status, "test setup"))
    database.dispose()


def wait_for_session(url: str, timeout: float = 20) -> str:
    """The id of the first session of tenant acme, once a background command has submitted it
    (read from the database: a process per poll would only slow the test down)."""
    database = Database(url)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with tenant_scope("acme"), unit_of_work(database) as uow:
                listed = uow.sessions.list(limit=1)
            if listed:
                return listed[0].id
            time.sleep(0.05)
    finally:
        database.dispose()
    raise AssertionError("no session was submitted")


# --- submit, list, show, events ----------------------------------------------------------------


def test_a_submitted_session_is_pending_and_listed_shown_and_recorded(db_url: str) -> None:
    created = submit(db_url, "--prompt", PROMPT)
    assert created["id"].startswith("IND-")
    assert created["status"] == "PENDING"
    assert created["title"] == "Fix the flaky login test"  # the prompt's first line
    assert created["initial_prompt"] == PROMPT

    listed = json.loads(ok(db_url, "session", "list", "--tenant", "acme", "--json"))
    assert [s["id"] for s in listed] == [created["id"]]
    assert created["id"] in ok(db_url, "session", "list", "--tenant", "acme")

    shown = show(db_url, created["id"])
    assert shown["id"] == created["id"]
    assert shown["metrics"]["tokens_in"] == 0
    human = ok(db_url, "session", "show", "--tenant", "acme", created["id"])
    assert "PENDING" in human and "metrics.cost_usd" in human

    history = events(db_url, created["id"])
    assert [(e["seq"], e["event_type"], e["new_status"]) for e in history] == [
        (1, "session.created", "PENDING")
    ]
    assert "session.created" in ok(db_url, "session", "events", "-t", "acme", created["id"])


def test_the_default_title_is_the_first_non_blank_line_trimmed_to_200(db_url: str) -> None:
    assert submit(db_url, "--prompt", "\n   \n  Tidy the README  \nthen more")["title"] == (
        "Tidy the README"
    )
    assert submit(db_url, "--prompt", "x" * 300)["title"] == "x" * 200


def test_every_submit_option_is_stored(db_url: str, tmp_path: Path) -> None:
    prompt_file = tmp_path / "prompt.md"
    prompt_file.write_text("Review the payment module\nfor rounding errors.\n")
    created = submit(
        db_url,
        "--prompt-file",
        str(prompt_file),
        "--title",
        "  Payment review  ",
        "--type",
        "review",
        "--priority",
        "high",
        "--model",
        "anthropic/claude-sonnet-4",
        "--max-duration",
        "600",
        "--max-retries",
        "1",
        "--capability",
        "Python",
        "--capability",
        "security",
        "--max-cost-usd",
        "2.5",
        "--max-tokens",
        "50000",
        "--tag",
        "billing",
        "--tag",
        "q3",
    )
    assert created["initial_prompt"] == prompt_file.read_text()
    assert created["title"] == "Payment review"
    assert created["session_type"] == "review"
    assert created["priority"] == 1
    assert created["model"] == "anthropic/claude-sonnet-4"
    assert created["max_duration_seconds"] == 600
    assert created["max_retries"] == 1
    assert created["required_capabilities"] == ["Python", "security"]
    assert created["cost_cap"] == {"max_cost_usd": 2.5, "max_tokens": 50000}
    assert created["tags"] == ["billing", "q3"]
    assert show(db_url, created["id"])["cost_cap"] == created["cost_cap"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--prompt", PROMPT, "--title", "   "], "title"),  # blank title
        (["--prompt", "x" * 10_001], "initial_prompt"),  # one character too long
        (["--prompt", "   "], "initial_prompt"),  # blank prompt
        ([], "prompt"),  # no prompt at all
        (["--prompt", PROMPT, "--prompt-file", "/dev/null"], "prompt"),  # both
        (["--prompt-file", "/no/such/file.md"], "prompt-file"),
        (["--prompt", PROMPT, "--priority", "URGENT"], "priority"),
        (["--prompt", PROMPT, "--type", "chat"], "type"),
        (["--prompt", PROMPT, "--model", "no-slash"], "model"),
        (["--prompt", PROMPT, "--max-duration", "59"], "max_duration_seconds"),
        (["--prompt", PROMPT, "--max-retries", "21"], "max_retries"),
        (["--prompt", PROMPT, "--max-cost-usd", "0"], "max_cost_usd"),
    ],
)
def test_bad_input_is_refused_on_one_line_and_nothing_is_written(
    db_url: str, args: list[str], expected: str
) -> None:
    line = refused(db_url, "session", "submit", "--tenant", "acme", *args)
    assert expected in line
    assert session_count(db_url) == 0


def test_an_unknown_tenant_is_refused_everywhere(db_url: str) -> None:
    assert "tenant 'nope' not found" in refused(
        db_url, "session", "submit", "-t", "nope", "--prompt", PROMPT
    )
    for command in (["list"], ["show", "IND-X"], ["events", "IND-X"], ["cancel", "IND-X"]):
        assert "tenant 'nope' not found" in refused(db_url, "session", *command, "-t", "nope")
    assert session_count(db_url) == 0


@pytest.mark.parametrize("command", ["show", "events", "cancel", "pause", "resume", "stop"])
def test_an_unknown_session_is_not_found(db_url: str, command: str) -> None:
    line = refused(db_url, "session", command, "-t", "acme", "IND-NOPE")
    assert line == "error: session 'IND-NOPE' not found"


def test_another_tenants_session_is_not_found(db_url: str) -> None:
    ok(db_url, "tenant", "create", "globex")
    theirs = submit(db_url, "--prompt", PROMPT, tenant="globex")
    assert "not found" in refused(db_url, "session", "show", "-t", "acme", theirs["id"])
    assert "not found" in refused(db_url, "session", "cancel", "-t", "acme", theirs["id"])
    assert show(db_url, theirs["id"], tenant="globex")["status"] == "PENDING"


def test_a_tenant_over_its_token_budget_is_refused(db_url: str) -> None:
    ok(db_url, "tenant", "create", "broke", "--monthly-token-budget", "0")
    line = refused(db_url, "session", "submit", "-t", "broke", "--prompt", PROMPT)
    assert "monthly tokens" in line and "refused" in line
    assert session_count(db_url) == 0


def test_the_same_idempotency_key_gives_the_same_session(db_url: str) -> None:
    first = submit(db_url, "--prompt", PROMPT, "--idempotency-key", "ci-build-42")
    again = submit(db_url, "--prompt", PROMPT, "--idempotency-key", "ci-build-42")
    other = submit(db_url, "--prompt", PROMPT, "--idempotency-key", "ci-build-43")
    assert again["id"] == first["id"] and other["id"] != first["id"]
    assert session_count(db_url) == 2


@pytest.mark.parametrize(
    "changed",
    [("--prompt", "something else"), ("--prompt", PROMPT, "--priority", "HIGH")],
    ids=["another prompt", "another priority"],
)
def test_an_idempotency_key_reused_for_another_request_is_refused(
    db_url: str, changed: tuple[str, ...]
) -> None:
    first = submit(db_url, "--prompt", PROMPT, "--idempotency-key", "ci-build-42")
    line = refused(
        db_url, "session", "submit", "-t", "acme", "--idempotency-key", "ci-build-42", *changed
    )
    assert line == (
        f"error: idempotency key 'ci-build-42' was given to session {first['id']} for another "
        "request: use a new key for a new request"
    )
    assert session_count(db_url) == 1


def test_list_filters_by_status_and_limits(db_url: str) -> None:
    first = submit(db_url, "--prompt", "one")["id"]
    second = submit(db_url, "--prompt", "two")["id"]
    third = submit(db_url, "--prompt", "three")["id"]
    ok(db_url, "session", "cancel", "-t", "acme", second)

    def listed(*args: str) -> list[str]:
        rows = json.loads(ok(db_url, "session", "list", "-t", "acme", "--json", *args))
        return [row["id"] for row in rows]

    assert listed() == [third, second, first]  # newest first
    assert listed("--status", "pending") == [third, first]
    assert listed("--status", "CANCELLED", "--status", "PENDING", "--limit", "2") == [
        third,
        second,
    ]
    assert "status" in refused(db_url, "session", "list", "-t", "acme", "--status", "DONE")
    assert "limit" in refused(db_url, "session", "list", "-t", "acme", "--limit", "0")


# --- steering ----------------------------------------------------------------------------------


def test_cancel_before_start_records_the_transition(db_url: str) -> None:
    session_id = submit(db_url, "--prompt", PROMPT)["id"]
    out = ok(db_url, "session", "cancel", "-t", "acme", session_id, "--reason", "not needed")
    assert "CANCELLED" in out
    assert show(db_url, session_id)["status"] == "CANCELLED"
    last = events(db_url, session_id)[-1]
    assert (last["old_status"], last["new_status"], last["reason"]) == (
        "PENDING",
        "CANCELLED",
        "not needed",
    )
    assert events(db_url, session_id, "--after", "1") == [last]


def test_cancelling_a_completed_session_is_refused_and_changes_nothing(db_url: str) -> None:
    session_id = submit(db_url, "--prompt", PROMPT)["id"]
    move(db_url, session_id, S.RUNNING, S.COMPLETED)
    line = refused(db_url, "session", "cancel", "-t", "acme", session_id)
    assert line == (
        f"error: session {session_id!r} is COMPLETED: only a PENDING, QUEUED, RUNNING, PAUSED "
        "or DEGRADED session can be cancelled"
    )
    assert show(db_url, session_id)["status"] == "COMPLETED"
    assert len(events(db_url, session_id)) == 3


def test_a_message_is_queued_on_a_pending_session_and_continues_an_ended_one(
    db_url: str,
) -> None:
    session_id = submit(db_url, "--prompt", PROMPT)["id"]
    out = ok(db_url, "session", "message", "-t", "acme", session_id, "Also fix the retry.")
    assert "queued" in out
    queued = [e for e in events(db_url, session_id) if e["event_type"] == "session.message"]
    assert [e["data"]["text"] for e in queued] == ["Also fix the retry."]
    move(db_url, session_id, S.RUNNING, S.COMPLETED)
    answer = json.loads(
        ok(db_url, "session", "message", "-t", "acme", session_id, "Now the docs.", "--json")
    )
    assert answer["delivery"] == "session"
    child = show(db_url, answer["session_id"])
    assert child["parent_id"] == session_id
    assert child["initial_prompt"].startswith("Now the docs.")
    line = refused(
        db_url, "session", "message", "-t", "acme", "IND-00000000000000000000000000", "x"
    )
    assert "not found" in line.lower()


def test_retry_puts_a_failed_session_back_to_pending_now(db_url: str) -> None:
    session_id = submit(db_url, "--prompt", PROMPT)["id"]
    move(db_url, session_id, S.RUNNING, S.FAILED)
    out = ok(db_url, "session", "retry", "-t", "acme", session_id)
    assert "PENDING" in out
    assert show(db_url, session_id)["retry_count"] == 1


def test_show_gives_the_current_error_only_and_each_retried_attempts_error(db_url: str) -> None:
    session_id = submit(db_url, "--prompt", PROMPT)["id"]
    move(db_url, session_id, S.RUNNING)
    move(db_url, session_id, S.FAILED, error={"reason": "agent server lost"})
    assert "error: " + json.dumps({"reason": "agent server lost"}) in ok(
        db_url, "session", "show", "-t", "acme", session_id
    )
    database = Database(db_url)
    assert [s.id for s in SessionService(database).retry_due("acme")] == [session_id]
    database.dispose()
    move(db_url, session_id, S.RUNNING, S.COMPLETED)

    shown = show(db_url, session_id)
    assert shown["status"] == "COMPLETED" and shown["error"] is None
    assert [(a["attempt"], a["error"]) for a in shown["metadata"]["attempts"]] == [
        (1, {"reason": "agent server lost"})
    ]
    lines = ok(db_url, "session", "show", "-t", "acme", session_id).splitlines()
    assert not [line for line in lines if line.startswith("error")]
    [attempt] = [line for line in lines if line.startswith("attempt 1:")]
    assert "FAILED" in attempt and "agent server lost" in attempt


def test_pause_resume_and_stop_a_running_session(db_url: str) -> None:
    session_id = submit(db_url, "--prompt", PROMPT)["id"]
    pending = f"error: session {session_id!r} is PENDING"
    assert refused(db_url, "session", "pause", "-t", "acme", session_id) == (
        f"{pending}: only a RUNNING session can be paused"
    )
    assert refused(db_url, "session", "stop", "-t", "acme", session_id) == (
        f"{pending}: only a RUNNING, PAUSED or DEGRADED session can be stopped"
    )
    assert refused(db_url, "session", "resume", "-t", "acme", session_id) == (
        f"{pending}: only a PAUSED session can be resumed"
    )
    move(db_url, session_id, S.RUNNING)
    assert refused(db_url, "session", "resume", "-t", "acme", session_id) == (
        f"error: session {session_id!r} is RUNNING: only a PAUSED session can be resumed"
    )
    ok(db_url, "session", "pause", "-t", "acme", session_id, "--reason", "lunch")
    assert show(db_url, session_id)["status"] == "PAUSED"
    ok(db_url, "session", "resume", "-t", "acme", session_id)
    assert show(db_url, session_id)["status"] == "RUNNING"
    ok(db_url, "session", "stop", "-t", "acme", session_id, "--reason", "enough")
    shown = show(db_url, session_id)
    assert (shown["status"], shown["status_reason"]) == ("STOPPED", "enough")
    changes = [(e["old_status"], e["new_status"]) for e in events(db_url, session_id)[1:]]
    assert changes == [
        ("PENDING", "RUNNING"),
        ("RUNNING", "PAUSED"),
        ("PAUSED", "RUNNING"),
        ("RUNNING", "STOPPED"),
    ]


def test_stopping_a_session_aborts_the_agents_turn_on_the_real_server(
    db_url: str, opencode_server: OpenCodeServer
) -> None:
    """The package's server asks for a password: the agent names its variable, which the
    commands read from their environment."""
    agent = json.loads(
        ok(
            db_url,
            *("agent", "register", "-t", "acme", "--name", "oc", "--url", opencode_server.url),
            *("--password-env", PASSWORD_VAR, "--json"),
            env=PASSWORD_ENV,
        )
    )
    with httpx.Client(
        base_url=opencode_server.url, auth=opencode_server.auth, timeout=30
    ) as server:
        agent_session = server.post("/session", json={"title": "cli stop"}).json()["id"]
        server.post(
            f"/session/{agent_session}/prompt_async",
            json={"parts": [{"type": "text", "text": "[script:hang] wait for me"}]},
        ).raise_for_status()
        deadline = time.monotonic() + 30
        while agent_session not in server.get("/session/status").json():
            assert time.monotonic() < deadline, "the agent never got busy"
            time.sleep(0.2)

        session_id = submit(db_url, "--prompt", PROMPT)["id"]
        move(
            db_url,
            session_id,
            S.RUNNING,
            agent_id=agent["id"],
            agent_session_id=agent_session,
        )
        ok(db_url, "session", "stop", "-t", "acme", session_id, env=PASSWORD_ENV)
        assert show(db_url, session_id)["status"] == "STOPPED"
        deadline = time.monotonic() + 30
        while agent_session in server.get("/session/status").json():  # busy until aborted
            assert time.monotonic() < deadline, "the agent's turn was not aborted"
            time.sleep(0.2)


# --- waiting and following ---------------------------------------------------------------------


def test_wait_gives_up_after_its_timeout_with_exit_3(db_url: str) -> None:
    started = time.monotonic()
    done = indorch(
        db_url, "session", "submit", "-t", "acme", "--prompt", PROMPT, "--wait", "--timeout", "1"
    )
    assert done.returncode == 3, (done.stdout, done.stderr)
    assert time.monotonic() - started < 15
    line = one_line_error(done)
    assert "timed out" in line and "PENDING" in line
    listed = json.loads(ok(db_url, "session", "list", "-t", "acme", "--json"))
    assert [s["status"] for s in listed] == ["PENDING"]  # it keeps going without us


def test_wait_exits_0_when_the_session_completes(db_url: str) -> None:
    """The installed script, end to end: a process of its own waits while the session runs."""
    waiting = Background.installed(
        db_url, "session", "submit", "-t", "acme", "--prompt", PROMPT, "--wait"
    )
    try:
        session_id = wait_for_session(db_url)
        waiting.wait_for_output("  PENDING  ")
        move(db_url, session_id, S.RUNNING)
        waiting.wait_for_output("  RUNNING  ")  # the waiter saw RUNNING before the session ends
        move(db_url, session_id, S.COMPLETED, result={"summary": "fixed"})
        done = waiting.finish(timeout=30)
    finally:
        waiting.kill()
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert "RUNNING" in done.stdout and "COMPLETED" in done.stdout  # plain lines, not a TTY


def test_wait_exits_1_when_the_session_ends_otherwise(db_url: str) -> None:
    waiting = Background.forked(
        db_url, "session", "submit", "-t", "acme", "--prompt", PROMPT, "--wait", "--json"
    )
    try:
        session_id = wait_for_session(db_url)
        ok(db_url, "session", "cancel", "-t", "acme", session_id)
        done = waiting.finish(timeout=30)
    finally:
        waiting.kill()
    assert done.returncode == 1, (done.stdout, done.stderr)
    final = json.loads(done.stdout)  # with --json, stdout is the session as it ended
    assert (final["id"], final["status"]) == (session_id, "CANCELLED")


def test_wait_keeps_waiting_while_a_failed_session_has_retries_left(db_url: str) -> None:
    waiting = Background.forked(
        db_url,
        "session",
        "submit",
        "-t",
        "acme",
        "--prompt",
        PROMPT,
        "--max-retries",
        "0",
        "--wait",
    )
    try:
        session_id = wait_for_session(db_url)
        move(db_url, session_id, S.RUNNING, S.FAILED)  # no retries: FAILED is the end
        done = waiting.finish(timeout=30)
    finally:
        waiting.kill()
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "FAILED" in done.stdout


def test_follow_prints_events_until_the_session_ends(db_url: str) -> None:
    session_id = submit(db_url, "--prompt", PROMPT)["id"]
    following = Background.forked(db_url, "session", "events", "-t", "acme", session_id, "--follow")
    try:
        following.wait_for_output("session.created")  # it follows before the session moves
        move(db_url, session_id, S.RUNNING)
        following.wait_for_output("PENDING -> RUNNING")
        move(db_url, session_id, S.PARTIALLY_COMPLETED)
        done = following.finish(timeout=30)
    finally:
        following.kill()
    assert done.returncode == 0, (done.stdout, done.stderr)
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 3, done.stdout
    assert "session.created" in lines[0]
    assert "PENDING -> RUNNING" in lines[1]
    assert "RUNNING -> PARTIALLY_COMPLETED" in lines[2]


def test_follow_as_json_prints_one_event_per_line_and_stops_on_a_final_session(
    db_url: str,
) -> None:
    session_id = submit(db_url, "--prompt", PROMPT)["id"]
    ok(db_url, "session", "cancel", "-t", "acme", session_id)
    done = indorch(db_url, "session", "events", "-t", "acme", session_id, "--follow", "--json")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.strip().splitlines()]
    assert [event["seq"] for event in lines] == [1, 2]
