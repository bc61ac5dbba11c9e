"""Tenants and their users. The slug is the tenant's identity everywhere (ids, partitions, logs)."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum

from pydantic import Field, field_validator

from domain.clock import utcnow
from domain.domain_model import DomainModel
from domain.ids import new_user_id

SLUG_PATTERN = re.compile(r"^[a-z0-9-]+$")
SLUG_MAX_LENGTH = 63
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def slug_problem(slug: str) -> str | None:
    """Why `slug` is not a valid tenant slug, or None when it is."""
    if not slug or len(slug) > SLUG_MAX_LENGTH or not SLUG_PATTERN.fullmatch(slug):
        return f"{slug!r} must match ^[a-z0-9-]+$ and be 1-{SLUG_MAX_LENGTH} characters"
    return None


class Tenant(DomainModel):
    slug: str
    name: str = Field(min_length=1, max_length=200)
    active: bool = True
    max_concurrent_sessions: int = Field(default=10, ge=1, le=10_000)
    monthly_token_budget: int = Field(default=1_000_000, ge=0)
    created_at: datetime = Field(default_factory=utcnow)

    @field_validator("slug")
    @classmethod
    def _slug(cls, value: str) -> str:
        problem = slug_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be blank")
        return value


class Role(StrEnum):
    """Ordered ADMIN > LEAD > MEMBER > VIEWER; `at_least` compares by that order."""

    ADMIN = "ADMIN"
    LEAD = "LEAD"
    MEMBER = "MEMBER"
    VIEWER = "VIEWER"

    @property
    def rank(self) -> int:
        return _ROLE_RANK[self]

    def at_least(self, other: Role) -> bool:
        return self.rank >= other.rank

    def capped_at(self, ceiling: Role) -> Role:
        """This role, or `ceiling` when that is lower (a key acts at most as its user)."""
        return self if ceiling.at_least(self) else ceiling


_ROLE_RANK = {Role.VIEWER: 0, Role.MEMBER: 1, Role.LEAD: 2, Role.ADMIN: 3}


class User(DomainModel):
    id: str = Field(default_factory=new_user_id)
    tenant_id: str
    email: str = Field(max_length=320)
    name: str = Field(default="", max_length=200)
    role: Role = Role.MEMBER
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        value = value.strip().lower()
        if not EMAIL_PATTERN.fullmatch(value):
            raise ValueError(f"{value!r} is not an e-mail address")
        return value
