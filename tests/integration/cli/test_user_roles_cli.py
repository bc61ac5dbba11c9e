"""`indorch user set-role|suspend|reactivate` and the key cap, as an operator runs them: a key
above its user's role is refused (exit 2, nothing written); a demoted or suspended user's key
acts accordingly at once."""

from __future__ import annotations

import json

import pytest

from domain.errors import KeyRefused
from domain.tenant import Role
from resources.database import Database
from services.factory import ServiceFactory
from tests.integration.cli.support import ok, refused


def _keys(db_url: str) -> list[dict]:
    return json.loads(ok(db_url, "apikey", "list", "-t", "acme", "--json"))


def test_user_roles_suspension_and_the_key_cap(db_url: str) -> None:
    ok(db_url, "user", "create", "-t", "acme", "--email", "ann@acme.io", "--role", "viewer")
    line = refused(
        db_url,
        "apikey",
        "create",
        "-t",
        "acme",
        "--name",
        "k",
        "--user",
        "ann@acme.io",
        "--role",
        "admin",
    )
    assert "above the role VIEWER of its user ann@acme.io" in line
    assert _keys(db_url) == []

    ok(db_url, "user", "set-role", "-t", "acme", "ann@acme.io", "--role", "admin")
    created = json.loads(
        ok(
            db_url,
            "apikey",
            "create",
            "-t",
            "acme",
            "--name",
            "k",
            "--user",
            "ann@acme.io",
            "--role",
            "admin",
            "--json",
        )
    )
    assert "is LEAD" in ok(
        db_url, "user", "set-role", "-t", "acme", "ann@acme.io", "--role", "lead"
    )
    database = Database(db_url)
    try:
        auth = ServiceFactory(database).authentication()
        assert auth.authenticate("acme", created["key"]).role is Role.LEAD
        ok(db_url, "user", "suspend", "-t", "acme", "ann@acme.io")
        with pytest.raises(KeyRefused):
            auth.authenticate("acme", created["key"])
        ok(db_url, "user", "reactivate", "-t", "acme", "ann@acme.io")
        assert auth.authenticate("acme", created["key"]).role is Role.LEAD
    finally:
        database.dispose()
    assert "not found" in refused(db_url, "user", "suspend", "-t", "acme", "nobody@acme.io")
