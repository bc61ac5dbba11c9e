"""Secrets at rest: sealed with the platform key, readable only with it, never in clear text."""

from __future__ import annotations

import stat

import pytest
from cryptography.fernet import Fernet

from domain.errors import InvalidSetting, SecretUnreadable
from resources.secret_box import SECRET_KEY_VAR, SecretBox, secret_box_from_environment


def test_a_sealed_secret_opens_with_the_same_key_and_is_not_clear_text():
    box = SecretBox([Fernet.generate_key().decode()])
    sealed = box.seal("ghp_example-token")
    assert "ghp_example-token" not in sealed
    assert box.open(sealed) == "ghp_example-token"


def test_another_key_cannot_open_it():
    sealed = SecretBox([Fernet.generate_key().decode()]).seal("s3cret")
    with pytest.raises(SecretUnreadable):
        SecretBox([Fernet.generate_key().decode()]).open(sealed)


def test_a_tampered_secret_is_refused():
    box = SecretBox([Fernet.generate_key().decode()])
    sealed = box.seal("s3cret")
    tampered = sealed[:-4] + ("AAAA" if not sealed.endswith("AAAA") else "BBBB")
    with pytest.raises(SecretUnreadable):
        box.open(tampered)


def test_rotation_new_key_first_old_secrets_still_open_and_reseal_with_the_new():
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    sealed_with_old = SecretBox([old]).seal("kept")
    rotated = SecretBox([new, old])
    assert rotated.open(sealed_with_old) == "kept"
    assert SecretBox([new]).open(rotated.seal("kept")) == "kept"


def test_the_key_comes_from_the_environment(monkeypatch, tmp_path):
    key = Fernet.generate_key().decode()
    monkeypatch.setenv(SECRET_KEY_VAR, key)
    monkeypatch.setenv("INDORCH_STATE_DIR", str(tmp_path))
    box = secret_box_from_environment()
    assert SecretBox([key]).open(box.seal("x")) == "x"
    assert not (tmp_path / "secret.key").exists()


def test_a_malformed_key_names_the_variable_not_the_value(monkeypatch):
    monkeypatch.setenv(SECRET_KEY_VAR, "not-a-fernet-key")
    with pytest.raises(InvalidSetting) as raised:
        secret_box_from_environment()
    assert SECRET_KEY_VAR in str(raised.value)
    assert "not-a-fernet-key" not in str(raised.value)


def test_without_a_configured_key_one_is_made_in_the_state_dir_readable_only_by_its_owner(
    monkeypatch, tmp_path
):
    monkeypatch.delenv(SECRET_KEY_VAR, raising=False)
    monkeypatch.setenv("INDORCH_STATE_DIR", str(tmp_path))
    sealed = secret_box_from_environment().seal("x")
    key_file = tmp_path / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert secret_box_from_environment().open(sealed) == "x"  # the same key the next time
