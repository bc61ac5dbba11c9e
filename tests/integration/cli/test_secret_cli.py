"""`indorch secret set|list|delete`: the value comes from stdin, never argv; it is printed by no
command, stored sealed (the database file holds no clear text), and opens only with the key."""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.fernet import Fernet

from domain.caller import Caller
from resources.database import Database
from resources.secret_box import SecretBox
from services.tenant_secrets import TenantSecrets
from tests.integration.cli.support import indorch, ok, refused

VALUE = "glpat-cli-Value-never-printed"


def test_a_secret_is_set_from_stdin_listed_by_name_and_stored_sealed(db_url: str) -> None:
    key = Fernet.generate_key().decode()
    env = {"INDORCH_SECRET_KEY": key}
    done = indorch(db_url, "secret", "set", "-t", "acme", "repo-token", env=env, stdin=VALUE + "\n")
    assert done.returncode == 0, done.stderr
    assert VALUE not in done.stdout + done.stderr

    listed = json.loads(ok(db_url, "secret", "list", "-t", "acme", "--json", env=env))
    assert [s["name"] for s in listed] == ["repo-token"]
    table = ok(db_url, "secret", "list", "-t", "acme", env=env)
    assert "repo-token" in table and VALUE not in table

    database_file = Path(db_url.removeprefix("sqlite:///"))
    for path in database_file.parent.glob(database_file.name + "*"):  # the file and its WAL
        assert VALUE.encode() not in path.read_bytes()
    database = Database(db_url)
    try:
        opened = TenantSecrets(database, SecretBox([key])).reveal_for_operation(
            Caller.operator(), "acme", "repo-token"
        )
    finally:
        database.dispose()
    assert opened == VALUE  # the trailing newline of the pipe is not part of it

    ok(db_url, "secret", "delete", "-t", "acme", "repo-token", env=env)
    assert json.loads(ok(db_url, "secret", "list", "-t", "acme", "--json", env=env)) == []


def test_refusals_are_one_line_exit_2_and_never_echo_the_value(db_url: str) -> None:
    line = refused(db_url, "secret", "delete", "-t", "acme", "missing")
    assert "secret 'missing' not found" in line
    done = indorch(db_url, "secret", "set", "-t", "nope", "x", stdin=VALUE)
    assert done.returncode == 2 and "tenant 'nope' not found" in done.stderr
    assert VALUE not in done.stdout + done.stderr
    done = indorch(db_url, "secret", "set", "-t", "acme", "bad name", stdin=VALUE)
    assert done.returncode == 2 and VALUE not in done.stdout + done.stderr
    done = indorch(db_url, "secret", "set", "-t", "acme", "empty", stdin="\n")
    assert done.returncode == 2 and "empty" in done.stderr
    assert json.loads(ok(db_url, "secret", "list", "-t", "acme", "--json")) == []
