"""A tenant's secret (a repository token, a deploy key): a name the tenant refers to, and a value
stored sealed, never shown and never listed, opened only for the operation that needs it.

The record here carries the name and times only: the value never travels in a domain object that
could be printed, logged or serialised.
"""

from __future__ import annotations

import re
from datetime import datetime

from pydantic import Field, field_validator

from domain.clock import utcnow
from domain.domain_model import ValueObject

SECRET_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,99}")
MAX_SECRET_BYTES = 64 * 1024


def secret_value_problem(value: str) -> str | None:
    """Why `value` cannot be stored (never quoting it), or None."""
    if not value.strip():
        return "the secret is empty"
    if len(value.encode()) > MAX_SECRET_BYTES:
        return f"the secret is longer than {MAX_SECRET_BYTES} bytes"
    return None


class TenantSecret(ValueObject):
    tenant_id: str
    name: str
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not SECRET_NAME.fullmatch(value):
            raise ValueError(
                f"{value!r} must start with a letter and hold only letters, digits, _ . - "
                "(at most 100 characters)"
            )
        return value
