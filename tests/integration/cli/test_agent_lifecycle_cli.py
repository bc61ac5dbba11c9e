"""`indorch agent drain|deactivate|activate|remove` on SQLite and PostgreSQL, as operators run it.

Contract: drain and deactivate take the agent out of routing (the registry the waves read lists
ACTIVE agents only) and show it in `list`/`show`; activate puts it back; a move the lifecycle
does not allow (drain an inactive agent, activate an active one) prints one line and exits 2;
remove deletes the agent, but is refused (one line, exit 2, nothing changed) while a session is
queued, running, degraded or paused on it.

The commands run by their entry point in this process (the support module's in-process runner);
the refused removal runs the installed `indorch` script, end to end.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from domain.caller import Caller
from domain.session import SessionStatus
from resources.database import Database, tenant_scope, unit_of_work
from services.session_service import SessionService, SubmitSession
from standins.opencode_server import free_port
from tests.integration.cli import support
from tests.integration.cli.support import ok_in_process as ok
from tests.integration.cli.support import refused_in_process as refused

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, db_url: str) -> str:
    """A database at the current schema with the tenant acme, on each backend in turn."""
    if request.param == "sqlite":
        return db_url
    postgres = request.getfixturevalue("migrated_postgres_copy")
    ok(postgres, "tenant", "create", "acme")
    return postgres


def register(url: str, name: str) -> str:
    args = ("--name", name, "--url", f"http://127.0.0.1:{free_port()}", "--no-check", "--json")
    return json.loads(ok(url, "agent", "register", "-t", "acme", *args))["id"]


def agent_json(url: str, command: str, agent_id: str) -> dict:
    return json.loads(ok(url, "agent", command, "-t", "acme", agent_id, "--json"))


def routable(url: str) -> list[str]:
    """The agents a wave would route to: what `WaveSupervisor` reads from the registry."""
    database = Database(url)
    try:
        with tenant_scope("acme"), unit_of_work(database) as uow:
            return [agent.id for agent in uow.agents.list(active_only=True)]
    finally:
        database.dispose()


def start_session_on(url: str, agent_id: str) -> str:
    """A session claimed by a wave and RUNNING on the agent, as the supervisor leaves it."""
    database = Database(url)
    try:
        service = SessionService(database)
        session = service.submit(
            Caller.operator(), "acme", SubmitSession(title="busy", prompt="work")
        )
        service.claim_pending("acme", 10, timedelta(minutes=5), lambda _: "wave-1")
        with tenant_scope("acme"), unit_of_work(database) as uow:
            running = uow.sessions.get(session.id)
            running.agent_id = agent_id
            uow.sessions.save_transition(running, running.transition_to(SessionStatus.RUNNING))
        return session.id
    finally:
        database.dispose()


def end_session(url: str, session_id: str) -> None:
    database = Database(url)
    try:
        with tenant_scope("acme"), unit_of_work(database) as uow:
            session = uow.sessions.get(session_id)
            uow.sessions.save_transition(
                session, session.transition_to(SessionStatus.COMPLETED, "done")
            )
    finally:
        database.dispose()


def test_drain_deactivate_and_activate_move_an_agent_out_of_routing_and_back(url: str) -> None:
    agent_id, other_id = register(url, "builder"), register(url, "spare")
    assert sorted(routable(url)) == sorted([agent_id, other_id])

    drained = agent_json(url, "drain", agent_id)
    assert (drained["status"], drained["active"]) == ("DRAINING", False)
    assert routable(url) == [other_id]
    listed = {
        a["id"]: a["status"] for a in json.loads(ok(url, "agent", "list", "-t", "acme", "--json"))
    }
    assert listed == {agent_id: "DRAINING", other_id: "ACTIVE"}
    assert "DRAINING" in ok(url, "agent", "list", "-t", "acme")
    assert "DRAINING" in ok(url, "agent", "show", "-t", "acme", agent_id)

    assert agent_json(url, "deactivate", agent_id)["status"] == "INACTIVE"
    assert routable(url) == [other_id]
    assert agent_json(url, "show", agent_id)["status"] == "INACTIVE"

    assert agent_json(url, "activate", agent_id)["status"] == "ACTIVE"
    assert sorted(routable(url)) == sorted([agent_id, other_id])


def test_a_move_the_lifecycle_does_not_allow_is_refused_and_changes_nothing(url: str) -> None:
    agent_id = register(url, "builder")
    line = refused(url, "agent", "activate", "-t", "acme", agent_id)
    assert "ACTIVE -> ACTIVE" in line
    agent_json(url, "deactivate", agent_id)
    line = refused(url, "agent", "drain", "-t", "acme", agent_id)
    assert "INACTIVE -> DRAINING" in line
    assert agent_json(url, "show", agent_id)["status"] == "INACTIVE"
    for command in ("drain", "deactivate", "activate", "remove"):
        line = refused(url, "agent", command, "-t", "acme", "AGENT-NOPE")
        assert line == "error: agent 'AGENT-NOPE' not found"


def test_remove_is_refused_while_a_session_runs_on_the_agent_then_deletes_it(url: str) -> None:
    agent_id = register(url, "builder")
    session_id = start_session_on(url, agent_id)
    agent_json(url, "drain", agent_id)
    assert agent_json(url, "show", agent_id)["active_sessions"] == 1

    line = support.refused(
        url, "agent", "remove", "-t", "acme", agent_id, runner=support.indorch_process
    )

    assert agent_id in line and "1 session on it" in line and "drain" in line
    assert agent_json(url, "show", agent_id)["status"] == "DRAINING"  # nothing changed

    end_session(url, session_id)
    removed = agent_json(url, "remove", agent_id)
    assert removed == {"id": agent_id, "name": "builder", "removed": True}
    assert json.loads(ok(url, "agent", "list", "-t", "acme", "--json")) == []
    assert refused(url, "agent", "show", "-t", "acme", agent_id).endswith("not found")
    register(url, "builder")  # its name is free again
