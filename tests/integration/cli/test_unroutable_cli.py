"""`indorch session submit` / `show` for a session no agent of its tenant can serve.

Contract: submit warns at once, one line on stderr naming what no agent offers, and still stores
the session and exits 0; a session some agent can serve gets no warning; once the dispatcher set
it aside, `session show` says why it waits.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from domain.session import SessionStatus
from resources.database import Database
from services.session_service import SessionService
from tests.integration.cli.support import indorch, ok, one_line_error

NO_SERVER = "http://127.0.0.1:9"


def _submit(url: str, *args: str) -> tuple[dict, str]:
    done = indorch(url, "session", "submit", "-t", "acme", "--json", "--prompt", "Port it.", *args)
    assert done.returncode == 0, (done.stdout, done.stderr)
    return json.loads(done.stdout), done.stderr


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_submit_warns_when_no_agent_could_serve_it_and_show_says_why_it_waits(
    backend: str, db_url: str, request: pytest.FixtureRequest
) -> None:
    url = db_url
    if backend == "postgres":
        url = request.getfixturevalue("migrated_postgres_copy")
        ok(url, "tenant", "create", "acme")
    agent = ("agent", "register", "-t", "acme", "--name", "py", "--url", NO_SERVER)
    ok(url, *agent, "--capability", "python", "--no-check")

    rust, warned = _submit(url, "--capability", "rust")
    python, quiet = _submit(url, "--capability", "python")

    line = one_line_error(("", warned))
    assert line.startswith(f"warning: session {rust['id']}: no agent offers rust in tenant acme")
    assert quiet == ""
    stored = json.loads(ok(url, "session", "show", "-t", "acme", rust["id"], "--json"))
    assert stored["status"] == SessionStatus.PENDING.value

    database = Database(url)  # the dispatcher's claim
    try:
        claim = SessionService(database).claim_pending(
            "acme", 10, timedelta(minutes=5), lambda sessions: "wave-1"
        )
    finally:
        database.dispose()
    assert [s.id for s in claim.sessions] == [python["id"]]
    shown = ok(url, "session", "show", "-t", "acme", rust["id"])
    assert "no agent offers rust" in shown
