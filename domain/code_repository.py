"""A tenant's code repository: what its sessions check out, work on and push back a branch to.

The URL is stored as given and never holds credentials (a `user:password@` in it is refused):
those are the name of a tenant secret, read for the one git process that needs them. Each
session works on its own branch `indorch/<session id>`, pushed to the same remote.
"""

from __future__ import annotations

import re
from datetime import datetime
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from domain.clock import utcnow
from domain.domain_model import DomainModel

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
SECRET_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
URL_SCHEMES = frozenset({"file", "http", "https", "ssh"})
URL_MAX = 2000
SETUP_SCRIPT_MAX = 20_000
BRANCH_PREFIX = "indorch/"
# A git ref name as `git check-ref-format` would take it (a subset: no control characters,
# spaces, `~^:?*[\`, `..`, `@{`, no leading `-` or `/`, no `.lock` ending).
_REF_PATTERN = re.compile(
    r"^(?!-)(?!/)(?!.*\.\.)(?!.*@\{)(?!.*\.lock$)[^\x00-\x20~^:?*\[\\]{1,250}$"
)


def session_branch(session_id: str) -> str:
    """The branch a session works on, locally and on the remote."""
    return f"{BRANCH_PREFIX}{session_id}"


def ref_problem(ref: str) -> str | None:
    """Why `ref` cannot be a git ref, or None (branch, tag or commit names pass)."""
    if not _REF_PATTERN.fullmatch(ref) or ref.endswith("/") or ref.endswith("."):
        return f"{ref!r} is not a valid git ref"
    return None


def checked_ref(value: str) -> str:
    problem = ref_problem(value)
    if problem:
        raise ValueError(problem)
    return value


class CodeRepository(DomainModel):
    tenant_id: str
    name: str
    url: str = Field(min_length=1, max_length=URL_MAX)
    default_ref: str = "main"
    credentials_secret: str | None = None  # the name of a tenant secret; None: no credentials
    setup_script: str | None = Field(default=None, max_length=SETUP_SCRIPT_MAX)
    created_at: datetime = Field(default_factory=utcnow)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_PATTERN.fullmatch(value):
            raise ValueError(f"{value!r} must match {NAME_PATTERN.pattern}")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in URL_SCHEMES:
            raise ValueError(f"must be a {', '.join(sorted(URL_SCHEMES))} URL")
        if parts.password is not None or (parts.scheme in {"http", "https"} and parts.username):
            raise ValueError("must not hold credentials: name a tenant secret with --credentials")
        if parts.scheme != "file" and not parts.hostname:
            raise ValueError("names no host")
        if parts.scheme == "file" and not parts.path:
            raise ValueError("names no path")
        return value

    @field_validator("default_ref")
    @classmethod
    def _ref(cls, value: str) -> str:
        return checked_ref(value)

    @field_validator("credentials_secret")
    @classmethod
    def _secret(cls, value: str | None) -> str | None:
        if value is not None and not SECRET_NAME_PATTERN.fullmatch(value):
            raise ValueError(f"{value!r} must match {SECRET_NAME_PATTERN.pattern}")
        return value

    @field_validator("setup_script")
    @classmethod
    def _script(cls, value: str | None) -> str | None:
        return value if value and value.strip() else None
