"""The `indorch` command as operators run it: a real database, exit codes, the installed script.

Contract: bad input (invalid slug, duplicate tenant, unknown tenant, ...) prints one clear line on
stderr, exits 2, and writes nothing; listings take --json; an API key is printed once and only
its hash is stored; a tenant's deletion names each worktree it could not remove from a server.

The commands run by their entry point in this process (the support module's in-process runner);
a command on an unmigrated database runs the installed `indorch` script, end to end.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from domain.caller import Caller
from domain.workspace import TenantWorkspace
from resources.database import Database, tenant_scope, unit_of_work
from resources.database.schema import TENANT_TABLES
from services.session_service import SessionService, SubmitSession
from tests.integration.cli import support
from tests.integration.cli.support import indorch_in_process as indorch
from tests.integration.cli.support import ok_in_process as ok
from tests.integration.cli.support import refused_in_process as refused

UNREACHABLE = "http://127.0.0.1:1"  # nothing listens on port 1


def tenant_slugs(url: str) -> list[str]:
    return [tenant["slug"] for tenant in json.loads(ok(url, "tenant", "list", "--json"))]


def test_commands_on_an_unmigrated_database_say_to_run_db_upgrade(sqlite_url: str) -> None:
    line = support.refused(sqlite_url, "tenant", "list", runner=support.indorch_process)
    assert "indorch db upgrade" in line


def test_db_upgrade_is_safe_to_run_twice(sqlite_url: str) -> None:
    ok(sqlite_url, "db", "upgrade")
    ok(sqlite_url, "db", "upgrade")
    current = ok(sqlite_url, "db", "current")
    assert (
        current.startswith("database: 0") and current.split()[1].rstrip(";") == current.split()[-1]
    )


def test_tenant_create_and_list_as_json(migrated_db_url: str) -> None:
    ok(
        migrated_db_url,
        "tenant",
        "create",
        "acme",
        "--name",
        "Acme Corp",
        "--max-concurrent-sessions",
        "4",
    )
    ok(migrated_db_url, "tenant", "create", "globex")
    tenants = json.loads(ok(migrated_db_url, "tenant", "list", "--json"))
    assert [(t["slug"], t["name"], t["max_concurrent_sessions"]) for t in tenants] == [
        ("acme", "Acme Corp", 4),
        ("globex", "globex", 10),
    ]
    assert "Acme Corp" in ok(migrated_db_url, "tenant", "list")


@pytest.mark.parametrize(
    "slug",
    [
        "Acme",  # capitals
        "a_b",  # underscore
        "a b",  # space
        "x" * 64,  # too long
    ],
)
def test_an_invalid_slug_is_refused_and_nothing_is_written(migrated_db_url: str, slug: str) -> None:
    line = refused(migrated_db_url, "tenant", "create", slug)
    assert "slug" in line
    assert tenant_slugs(migrated_db_url) == []


def test_a_duplicate_tenant_is_refused(migrated_db_url: str) -> None:
    ok(migrated_db_url, "tenant", "create", "acme", "--name", "First")
    line = refused(migrated_db_url, "tenant", "create", "acme", "--name", "Second")
    assert "already exists" in line
    assert json.loads(ok(migrated_db_url, "tenant", "show", "acme", "--json"))["name"] == "First"


def test_tenant_delete_names_a_worktree_left_on_an_unreachable_server(db_url: str) -> None:
    """Best effort per server: the tenant is deleted and its worktree's record goes; the
    operator is told which worktree is left on which server."""
    unreachable = UNREACHABLE
    database = Database(db_url)
    try:
        with tenant_scope("acme"), unit_of_work(database) as uow:
            uow.workspaces.add(
                TenantWorkspace(
                    tenant_id="acme", server_url=unreachable, directory="/wt/tenant-acme"
                )
            )

        done = indorch(db_url, "tenant", "delete", "acme", "--yes")

        assert done.returncode == 0, (done.stdout, done.stderr)
        assert "tenant acme deleted" in done.stdout
        [warning] = done.stderr.strip().splitlines()
        assert "/wt/tenant-acme" in warning and unreachable in warning
        with tenant_scope("acme"), unit_of_work(database) as uow:
            assert uow.workspaces.list() == []
    finally:
        database.dispose()
    assert tenant_slugs(db_url) == []


def _claim_one_session(url: str, tenant: str) -> str:
    """Submit a session and claim it for a wave (QUEUED: active, its wave about to start it)."""
    database = Database(url)
    try:
        service = SessionService(database)
        session = service.submit(
            Caller.operator(), tenant, SubmitSession(title="busy", prompt="work")
        )
        claim = service.claim_pending(tenant, 10, timedelta(minutes=5), lambda _: "wave-1")
        assert [s.id for s in claim.sessions] == [session.id]
        return session.id
    finally:
        database.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_tenant_with_active_sessions_is_not_deleted(
    backend: str, db_url: str, request: pytest.FixtureRequest
) -> None:
    """Its waves would lose their worktrees under running sessions: refused until they end,
    and nothing changes (on PostgreSQL the count is taken under the tenant's row-level scope)."""
    url = db_url
    if backend == "postgres":
        url = request.getfixturevalue("migrated_postgres_copy")
        ok(url, "tenant", "create", "acme", "--name", "Acme")
    session_id = _claim_one_session(url, "acme")
    database = Database(url)
    try:
        with tenant_scope("acme"), unit_of_work(database) as uow:
            uow.workspaces.add(
                TenantWorkspace(tenant_id="acme", server_url=UNREACHABLE, directory="/wt/a")
            )

        line = refused(url, "tenant", "delete", "acme", "--yes")

        assert "1 active session" in line and "indorch session cancel" in line
        assert tenant_slugs(url) == ["acme"]
        with tenant_scope("acme"), unit_of_work(database) as uow:
            assert [w.directory for w in uow.workspaces.list()] == ["/wt/a"]
            assert uow.sessions.get(session_id).status.value == "QUEUED"
    finally:
        database.dispose()


def test_an_unknown_tenant_is_refused_everywhere_and_nothing_is_written(
    migrated_db_url: str,
) -> None:
    assert "tenant 'nope' not found" in refused(
        migrated_db_url, "user", "create", "--tenant", "nope", "--email", "a@b.io"
    )
    assert "not found" in refused(migrated_db_url, "user", "list", "--tenant", "nope")
    assert "not found" in refused(
        migrated_db_url, "apikey", "create", "--tenant", "nope", "--name", "ci"
    )
    assert "not found" in refused(migrated_db_url, "apikey", "list", "--tenant", "nope")
    assert "not found" in refused(migrated_db_url, "tenant", "show", "nope")
    engine = create_engine(migrated_db_url)
    with engine.connect() as connection:
        for table in TENANT_TABLES:
            assert connection.scalar(text(f"SELECT count(*) FROM {table}")) == 0, table
    engine.dispose()


def test_users_are_created_listed_and_validated(db_url: str) -> None:
    created = json.loads(
        ok(
            db_url,
            "user",
            "create",
            "-t",
            "acme",
            "--email",
            "Ann@Acme.io",
            "--role",
            "lead",
            "--json",
        )
    )
    assert created["email"] == "ann@acme.io" and created["role"] == "LEAD"
    assert "already exists" in refused(
        db_url, "user", "create", "-t", "acme", "--email", "ann@acme.io"
    )
    assert "email" in refused(db_url, "user", "create", "-t", "acme", "--email", "not-an-email")
    users = json.loads(ok(db_url, "user", "list", "-t", "acme", "--json"))
    assert [u["email"] for u in users] == ["ann@acme.io"]


def test_a_bad_role_is_a_usage_error(db_url: str) -> None:
    done = indorch(db_url, "user", "create", "-t", "acme", "--email", "a@b.io", "--role", "king")
    assert done.returncode == 2
    assert "role" in done.stderr.lower()


def test_api_key_is_printed_once_and_only_its_hash_is_stored(db_url: str) -> None:
    ok(db_url, "user", "create", "-t", "acme", "--email", "ci@acme.io")
    created = json.loads(
        ok(
            db_url,
            "apikey",
            "create",
            "-t",
            "acme",
            "--name",
            "ci",
            "--user",
            "ci@acme.io",
            "--json",
        )
    )
    plaintext = created["key"]
    assert plaintext.startswith(created["prefix"])
    listed = ok(db_url, "apikey", "list", "-t", "acme", "--json")
    assert plaintext not in listed and json.loads(listed)[0]["id"] == created["id"]
    database_file = Path(db_url.removeprefix("sqlite:///"))
    for path in database_file.parent.glob(database_file.name + "*"):  # the file and its WAL
        assert plaintext.encode() not in path.read_bytes()
    database = Database(db_url)
    with tenant_scope("acme"), unit_of_work(database) as uow:
        assert uow.api_keys.authenticate(plaintext).id == created["id"]
    database.dispose()


def test_api_key_owner_must_be_a_user_of_the_tenant(db_url: str) -> None:
    assert "not found" in refused(
        db_url, "apikey", "create", "-t", "acme", "--name", "ci", "--user", "ghost@acme.io"
    )
    assert json.loads(ok(db_url, "apikey", "list", "-t", "acme", "--json")) == []


def test_db_upgrade_on_empty_postgres_enables_row_level_security(fresh_postgres_url: str) -> None:
    ok(fresh_postgres_url, "db", "upgrade")
    engine = create_engine(fresh_postgres_url)
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class "
                "WHERE relname = ANY(:names) AND relkind = 'r'"
            ),
            {"names": list(TENANT_TABLES)},
        ).all()
    engine.dispose()
    assert {name for name, *_ in rows} == set(TENANT_TABLES)
    assert all(enabled and forced for _, enabled, forced in rows)
    ok(fresh_postgres_url, "tenant", "create", "acme")
    ok(fresh_postgres_url, "user", "create", "-t", "acme", "--email", "a@acme.io")
    assert tenant_slugs(fresh_postgres_url) == ["acme"]


def test_health_is_ok_without_redis_and_degraded_when_redis_is_down(migrated_db_url: str) -> None:
    assert (
        json.loads(ok(migrated_db_url, "health", "--json"))["redis"]["status"] == "not configured"
    )
    done = indorch(migrated_db_url, "health", "--json", env={"REDIS_URL": "redis://127.0.0.1:1/0"})
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["status"] == "degraded" and report["database"]["status"] == "ok"
