"""API keys: random secrets handed out once; only their SHA-256 is ever stored.

A 256-bit random key needs no slow hash: nobody can guess it, so SHA-256 suffices and keeps
authentication a single indexed lookup.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from pydantic import Field

from domain.clock import utcnow
from domain.domain_model import DomainModel
from domain.ids import new_api_key_id
from domain.tenant import Role

KEY_PREFIX = "iok_"
DISPLAY_PREFIX_LENGTH = 12


def generate_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKey(DomainModel):
    id: str = Field(default_factory=new_api_key_id)
    tenant_id: str
    user_id: str | None = None
    name: str = Field(min_length=1, max_length=200)
    prefix: str
    role: Role = Role.MEMBER
    created_at: datetime = Field(default_factory=utcnow)
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
