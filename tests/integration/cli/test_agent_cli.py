"""`indorch agent ...` against real OpenCode servers: register, list (with live health), show.

Contract: registering checks the server's `GET /global/health` (with the Basic-auth password read
from the environment variable the agent names) unless `--no-check`, and refuses, writing nothing,
when it does not answer; only the variable's name is stored, never the password; invalid URL,
capacity outside 1-50, a duplicate name or an unknown agent print one line and exit 2.

The commands run by their entry point in this process (the support module's in-process runner);
the first registration runs the installed `indorch` script, end to end, the password in the
environment of a process of its own.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from standins.opencode_server import OpenCodeServer, free_port
from tests.integration.cli import support
from tests.integration.cli.support import OPENCODE_PASSWORD, PASSWORD_ENV, PASSWORD_VAR
from tests.integration.cli.support import ok_in_process as ok
from tests.integration.cli.support import refused_in_process as refused


def dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


def agent_count(url: str) -> int:
    engine = create_engine(url)
    with engine.connect() as connection:
        count = connection.scalar(text("SELECT count(*) FROM agents"))
    engine.dispose()
    return int(count)


def register(
    url: str, *args: str, env: dict[str, str] | None = None, installed: bool = False
) -> dict:
    command = ("agent", "register", "-t", "acme", "--json", *args)
    if installed:
        return json.loads(support.ok(url, *command, env=env, runner=support.indorch_process))
    return json.loads(ok(url, *command, env=env))


def test_register_checks_the_real_server_and_stores_no_password(
    db_url: str, opencode_server: OpenCodeServer
) -> None:
    agent = register(
        db_url,
        "--name",
        "builder-1",
        "--url",
        opencode_server.url + "/",
        "--password-env",
        PASSWORD_VAR,
        "--model",
        "scripted/coder",
        "--capability",
        "Python",
        "--capability",
        "git",
        "--capacity",
        "3",
        env=PASSWORD_ENV,
        installed=True,
    )
    assert agent["id"].startswith("AGENT-")
    assert agent["server_url"] == opencode_server.url  # trailing slash dropped
    assert agent["password_env"] == PASSWORD_VAR
    assert agent["opencode_agent"] == "build"
    assert agent["capabilities"] == ["git", "python"]
    # No session finished yet: NEW, success rate unknown (not ELITE at 100 %).
    assert (agent["capacity"], agent["tier"], agent["success_rate"]) == (3, "NEW", None)
    assert (agent["status"], agent["active"], agent["breaker"]) == ("ACTIVE", True, "CLOSED")
    assert agent["last_heartbeat_at"] is not None  # the server answered just now

    database_file = Path(db_url.removeprefix("sqlite:///"))
    for path in database_file.parent.glob(database_file.name + "*"):  # the file and its WAL
        assert OPENCODE_PASSWORD.encode() not in path.read_bytes()

    shown = json.loads(ok(db_url, "agent", "show", "-t", "acme", agent["id"], "--json"))
    assert shown["name"] == "builder-1" and shown["active_sessions"] == 0
    assert "builder-1" in ok(db_url, "agent", "show", "-t", "acme", agent["id"])


def test_register_is_refused_when_the_password_is_missing_or_wrong(
    db_url: str, opencode_server: OpenCodeServer
) -> None:
    args = ("agent", "register", "-t", "acme", "--name", "b", "--url", opencode_server.url)
    line = refused(db_url, *args, "--password-env", PASSWORD_VAR)  # variable not set
    assert "401" in line and f"{PASSWORD_VAR} is not set" in line
    line = refused(db_url, *args, "--password-env", PASSWORD_VAR, env={PASSWORD_VAR: "wrong"})
    assert "401" in line
    assert agent_count(db_url) == 0


def test_register_is_refused_when_the_server_does_not_answer(db_url: str) -> None:
    url = dead_url()
    line = refused(db_url, "agent", "register", "-t", "acme", "--name", "gone", "--url", url)
    assert url in line and "--no-check" in line
    assert agent_count(db_url) == 0
    agent = register(db_url, "--name", "gone", "--url", url, "--no-check")
    assert agent["last_heartbeat_at"] is None


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--url", "ftp://example.com"], "server_url"),
        (["--url", "http://"], "server_url"),
        (["--url", "example.com:4096"], "server_url"),
        (["--url", "http://user:pw@127.0.0.1:1"], "must not carry credentials"),
        (["--url", "http://example.com"], "plain http is allowed only to this host"),
        (["--url", "https://example.com", "--capacity", "0"], "capacity"),
        (["--url", "https://example.com", "--capacity", "51"], "capacity"),
        (["--url", "https://example.com", "--model", "gpt"], "model"),
        (["--url", "https://example.com", "--password-env", "not a name"], "password-env"),
        (["--url", "https://example.com", "--password-env", "DATABASE_URL"], "password-env"),
        (["--url", "https://example.com", "--password-env", "OPENAI_API_KEY"], "password-env"),
        (["--url", "https://example.com", "--name", "   "], "name"),
    ],
)
def test_invalid_agents_are_refused_and_nothing_is_written(
    db_url: str, args: list[str], expected: str
) -> None:
    name = [] if "--name" in args else ["--name", "a"]
    line = refused(db_url, "agent", "register", "-t", "acme", *name, *args, "--no-check")
    assert expected in line
    assert "pw@" not in line  # a password in a URL is never echoed
    assert agent_count(db_url) == 0


def test_plain_http_to_another_host_needs_the_operators_setting(db_url: str) -> None:
    args = ("agent", "register", "-t", "acme", "--name", "lan", "--url", "http://10.0.0.9:4096")
    refused(db_url, *args, "--no-check")
    refused(db_url, *args, "--no-check", env={"INDORCH_ALLOW_PLAIN_HTTP_AGENTS": "0"})
    ok(db_url, *args, "--no-check", env={"INDORCH_ALLOW_PLAIN_HTTP_AGENTS": "1"})
    assert agent_count(db_url) == 1


def test_a_server_another_tenants_agent_uses_is_refused_and_nothing_is_written(
    db_url: str,
) -> None:
    """One runtime serves one tenant; the refusal names neither that tenant nor its agent."""
    url = dead_url()
    ok(db_url, "tenant", "create", "globex")
    register(db_url, "--name", "acme-builder", "--url", url, "--no-check")
    spelled_otherwise = url.replace("127.0.0.1", "LOCALHOST") + "/"
    line = refused(
        db_url,
        *("agent", "register", "-t", "globex", "--name", "g", "--url", spelled_otherwise),
        "--no-check",
    )
    assert line == (
        "error: the server is in use by another tenant: a runtime serves one tenant "
        "(start or register a server of this tenant's own)"
    )
    assert "acme" not in line
    assert agent_count(db_url) == 1


def test_a_duplicate_name_is_refused(db_url: str) -> None:
    register(db_url, "--name", "twin", "--url", dead_url(), "--no-check")
    line = refused(
        db_url,
        "agent",
        "register",
        "-t",
        "acme",
        "--name",
        "twin",
        "--url",
        dead_url(),
        "--no-check",
    )
    assert "agent 'twin' already exists" in line
    assert agent_count(db_url) == 1


def test_an_unknown_agent_or_tenant_is_not_found(db_url: str) -> None:
    assert refused(db_url, "agent", "show", "-t", "acme", "AGENT-X") == (
        "error: agent 'AGENT-X' not found"
    )
    assert "tenant 'nope' not found" in refused(db_url, "agent", "list", "-t", "nope")
    assert "tenant 'nope' not found" in refused(
        db_url, "agent", "register", "-t", "nope", "--name", "a", "--url", dead_url(), "--no-check"
    )
    ok(db_url, "tenant", "create", "globex")
    theirs = json.loads(
        ok(
            db_url,
            *("agent", "register", "-t", "globex", "--name", "g", "--url", dead_url()),
            *("--no-check", "--json"),
        )
    )
    assert "not found" in refused(db_url, "agent", "show", "-t", "acme", theirs["id"])
    assert agent_count(db_url) == 1


def test_list_shows_agents_and_their_live_health(
    db_url: str, opencode_server: OpenCodeServer
) -> None:
    up = register(
        db_url,
        *("--name", "up", "--url", opencode_server.url, "--password-env", PASSWORD_VAR),
        env=PASSWORD_ENV,
    )
    down = register(db_url, "--name", "down", "--url", dead_url(), "--no-check")

    listed = json.loads(ok(db_url, "agent", "list", "-t", "acme", "--json"))
    assert [(a["name"], a["tier"], a["status"], a["active_sessions"]) for a in listed] == [
        ("down", "NEW", "ACTIVE", 0),
        ("up", "NEW", "ACTIVE", 0),
    ]
    assert "health" not in listed[0]
    table = ok(db_url, "agent", "list", "-t", "acme")
    for column in ("id", "name", "url", "capacity", "tier", "success", "status", "heartbeat"):
        assert column in table
    assert up["id"] in table and "NEW" in table and "100%" not in table

    probed = json.loads(
        ok(db_url, "agent", "list", "-t", "acme", "--health", "--json", env=PASSWORD_ENV)
    )
    health = {a["id"]: a["health"] for a in probed}
    assert health[up["id"]]["status"] == "ok" and health[up["id"]]["latency_ms"] >= 0
    assert health[up["id"]]["version"]
    assert health[down["id"]]["status"] == "down" and health[down["id"]]["error"]
    table = ok(db_url, "agent", "list", "-t", "acme", "--health", env=PASSWORD_ENV)
    assert "ok" in table and "down" in table and " ms" in table
