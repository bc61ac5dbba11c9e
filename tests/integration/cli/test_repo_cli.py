"""`indorch repo ...` and `session submit --repository`, as real processes on a real database.

Contract: a repository is registered with its URL, default ref, the NAME of a tenant secret and a
setup script; listed, shown and removed; a URL holding credentials, a bad name, a duplicate or an
unknown repository print one line and exit 2 (nothing written). A session names a repository and
a ref (default: the repository's); `session patch` refuses a session with no patch.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.cli.support import ok, refused


def add(url: str, *args: str) -> dict:
    return json.loads(ok(url, "repo", "add", "-t", "acme", "--json", *args))


def test_register_list_show_remove(db_url: str, tmp_path: Path) -> None:
    script = tmp_path / "setup.sh"
    script.write_text("pip install -e .\n")
    added = add(
        db_url,
        "app",
        "--url",
        "https://git.example.com/acme/app.git",
        "--default-ref",
        "develop",
        "--credentials",
        "git-token",
        "--setup-script-file",
        str(script),
    )
    assert added["name"] == "app" and added["credentials_secret"] == "git-token"
    listed = json.loads(ok(db_url, "repo", "list", "-t", "acme", "--json"))
    assert [r["name"] for r in listed] == ["app"]
    shown = json.loads(ok(db_url, "repo", "show", "app", "-t", "acme", "--json"))
    assert shown["setup_script"] == "pip install -e .\n"
    assert shown["default_ref"] == "develop"
    assert "app" in ok(db_url, "repo", "list", "-t", "acme")
    ok(db_url, "repo", "remove", "app", "-t", "acme")
    assert json.loads(ok(db_url, "repo", "list", "-t", "acme", "--json")) == []


def test_refusals_write_nothing(db_url: str) -> None:
    line = refused(
        db_url, "repo", "add", "app", "-t", "acme", "--url", "https://ann:pw@example.com/a.git"
    )
    assert "must not hold credentials" in line and "pw" not in line.replace("pwd", "")
    refused(db_url, "repo", "add", "App Name", "-t", "acme", "--url", "file:///srv/a.git")
    refused(db_url, "repo", "add", "app", "-t", "acme", "--url", "ftp://example.com/a.git")
    refused(
        db_url, "repo", "add", "app", "-t", "acme", "--url", "file:///a", "--default-ref", "a..b"
    )
    assert json.loads(ok(db_url, "repo", "list", "-t", "acme", "--json")) == []
    add(db_url, "app", "--url", "file:///srv/app.git")
    assert "already exists" in refused(
        db_url, "repo", "add", "app", "-t", "acme", "--url", "file:///srv/other.git"
    )
    refused(db_url, "repo", "show", "nope", "-t", "acme")
    refused(db_url, "repo", "remove", "nope", "-t", "acme")


def test_a_session_names_a_repository_and_a_ref(db_url: str) -> None:
    add(db_url, "app", "--url", "file:///srv/app.git", "--default-ref", "develop")
    base = ("session", "submit", "-t", "acme", "--prompt", "Fix it", "--json")
    default = json.loads(ok(db_url, *base, "--repository", "app"))
    assert (default["repository"], default["ref"]) == ("app", "develop")
    pinned = json.loads(ok(db_url, *base, "--repository", "app", "--ref", "v1.2"))
    assert (pinned["repository"], pinned["ref"]) == ("app", "v1.2")
    plain = json.loads(ok(db_url, *base))
    assert (plain["repository"], plain["ref"]) == (None, None)
    assert "repository" in refused(db_url, *base, "--repository", "nope")
    assert "ref" in refused(db_url, *base, "--ref", "main")
    assert "no patch" in refused(db_url, "session", "patch", "-t", "acme", default["id"])
    assert "no repository" in refused(db_url, "session", "patch", "-t", "acme", plain["id"])
