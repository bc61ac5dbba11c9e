"""Secrets never reach a training file: each kind a session may have printed is replaced."""

from __future__ import annotations

import pytest

from domain.secret_scrubbing import find_secrets, scrub

SECRETS = {
    "aws access key": "AKIAIOSFODNN7EXAMPLE",
    "github token": "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
    "github fine-grained": "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123456789",
    "openai key": "sk-proj-" + "Zx9" * 12,
    "slack token": "xoxb-123456789012-123456789012-abcdefghijABCDEFGHIJ1234",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0"
    ".dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "bearer": "Authorization: Bearer abcdef0123456789abcdef0123456789",
    "password assignment": 'password = "hunter2-but-longer"',
    "token assignment": "API_TOKEN=9f8e7d6c5b4a39281706",
    "connection string": "postgresql://app:Sup3rS3cret@db.internal:5432/prod",
    "private key": "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAuXn\nabc123==\n"
    "-----END RSA PRIVATE KEY-----",
}


@pytest.mark.parametrize("kind", sorted(SECRETS))
def test_each_kind_of_secret_is_replaced(kind):
    secret = SECRETS[kind]
    text = f"the agent printed {secret} while working"
    cleaned = scrub(text)
    assert "[REDACTED" in cleaned
    assert not find_secrets(cleaned), cleaned
    for piece in (
        "AKIAIOSFODNN7",
        "ghp_a1B2",
        "Zx9Zx9",
        "hunter2",
        "Sup3rS3cret",
        "MIIEow",
        "9f8e7d6c5b",
        "dozjgNryP4",
        "abcdef0123456789abcdef",
        "xoxb-1234",
    ):
        assert piece not in cleaned


def test_ordinary_code_and_prose_are_left_alone():
    text = (
        "def add(a, b):\n    return a + b\n\n"
        "The password field is validated in forms.py; see https://example.com/docs.\n"
        "git commit -m 'fix token parsing'"
    )
    assert scrub(text) == text
    assert find_secrets(text) == []


def test_a_connection_string_keeps_its_shape_without_the_password():
    cleaned = scrub("redis://:pa55w0rd@cache:6379/0 and mysql://root:toor@localhost/db")
    assert "pa55w0rd" not in cleaned and "toor" not in cleaned
    assert "redis://" in cleaned and "@cache:6379/0" in cleaned


def test_find_secrets_names_the_kinds():
    kinds = {found.kind for found in find_secrets(SECRETS["aws access key"] + " " + SECRETS["jwt"])}
    assert kinds == {"aws_access_key", "jwt"}
