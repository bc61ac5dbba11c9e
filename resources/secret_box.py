"""Secrets at rest (tenant credentials, runtime passwords): sealed with Fernet before they are
stored, opened only where an operation needs them.

The key comes from ``INDORCH_SECRET_KEY`` (one Fernet key, or several separated by commas: the
first seals, every one opens, so keys rotate without re-encrypting at once). Without it, the
embedded default makes one in the state directory (``secret.key``, mode 0600) on first use: a
production deployment sets the variable, so the key never sits beside the database.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from domain.errors import InvalidSetting, SecretUnreadable
from resources.settings import state_dir

SECRET_KEY_VAR = "INDORCH_SECRET_KEY"
KEY_FILE_NAME = "secret.key"


class SecretBox:
    """Seals and opens secrets with the platform's key (the first of `keys` seals)."""

    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise InvalidSetting(SECRET_KEY_VAR, "no key given")
        try:
            self._fernet = MultiFernet([Fernet(key.strip().encode()) for key in keys])
        except (ValueError, TypeError):
            raise InvalidSetting(
                SECRET_KEY_VAR, "not a Fernet key (32 url-safe base64-encoded bytes)"
            ) from None

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode()

    def open(self, sealed: str, what: str = "secret") -> str:
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise SecretUnreadable(what) from None


def secret_box_from_environment() -> SecretBox:
    configured = os.environ.get(SECRET_KEY_VAR)
    if configured:
        return SecretBox([key for key in configured.split(",") if key.strip()])
    return SecretBox([_local_key(state_dir() / KEY_FILE_NAME)])


def _local_key(path: Path) -> str:
    """The embedded default's key, created once with owner-only permissions. Written whole to a
    private file first, then linked into place: two processes starting at once agree on one key,
    and neither ever reads a half-written one."""
    if path.exists():
        return path.read_text().strip()
    key = Fernet.generate_key().decode()
    draft = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as key_file:
        key_file.write(key)
    try:
        os.link(draft, path)
    except FileExistsError:
        key = path.read_text().strip()
    finally:
        draft.unlink()
    return key
