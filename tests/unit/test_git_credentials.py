"""Credentials from a tenant secret's value, and reasons cleaned of the password."""

from __future__ import annotations

from resources.git.checkout import GitCredentials


def test_user_and_password_or_a_bare_token() -> None:
    assert GitCredentials.from_secret("ann:pa:ss") == GitCredentials("ann", "pa:ss")
    assert GitCredentials.from_secret("ghp_token") == GitCredentials("indorch", "ghp_token")
    assert GitCredentials.from_secret(":x") == GitCredentials("indorch", ":x")


def test_the_password_never_shows() -> None:
    credentials = GitCredentials.from_secret("ann:hunter2")
    assert "hunter2" not in repr(credentials)
    assert credentials.hide("fatal: hunter2 refused for ann") == "fatal: *** refused for ann"
