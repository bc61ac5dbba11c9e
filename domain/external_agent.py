"""EAP, the External Agent Protocol v1: agents that are not OpenCode servers take tasks too.

An external agent is registered by a tenant's LEAD with an endpoint URL (the same rules as an
OpenCode server's: `domain.agent_server_address`) and gets a token, shown once; only its
SHA-256 is kept (a 256-bit random token needs no slow hash, as API keys). With the token (and
the tenant's id) it beats its heart; while its last beat is fresher than the TTL, routing may
choose it (`domain.routing`), otherwise it has left routing until it beats again. A session
routed to it is POSTed to its endpoint as a `TaskAssignment`, signed (`domain.signed_payload`)
with the token's hash, which the agent can compute; it answers at once and later posts a
`TaskResult`, which ends the session.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from domain.agent import Agent
from domain.session import SessionStatus

PROTOCOL = "eap/1"
TOKEN_PREFIX = "eat_"
HEARTBEAT_TTL = timedelta(seconds=60)
HEARTBEAT_INTERVAL_SECONDS = 15  # what an agent is told to keep to (a quarter of the TTL)
ASSIGNMENT_PREFIX = "EAP-"
MAX_OUTPUT_CHARS = 100_000
# The headers of an assignment POSTed to an agent.
TIMESTAMP_HEADER = "X-EAP-Timestamp"
SIGNATURE_HEADER = "X-EAP-Signature"


def generate_agent_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_agent_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_assignment_id() -> str:
    return ASSIGNMENT_PREFIX + secrets.token_hex(12)


def silent_for(agent: Agent, now: datetime, ttl: timedelta = HEARTBEAT_TTL) -> timedelta | None:
    """How long past the TTL the agent's last heartbeat is (it has left routing), or None while
    it is fresh. Never beaten counts as silent."""
    if agent.last_heartbeat_at is None:
        return ttl
    age = now - agent.last_heartbeat_at
    return age if age > ttl else None


class ResultStatus(StrEnum):
    COMPLETED = "completed"
    PARTIALLY_COMPLETED = "partially_completed"
    FAILED = "failed"

    @property
    def session_status(self) -> SessionStatus:
        return SessionStatus(self.value.upper())


class TaskAssignment(BaseModel):
    """What an external agent receives: the session's work, and where to post the result."""

    protocol: str = PROTOCOL
    assignment_id: str
    session_id: str
    tenant_id: str
    title: str
    prompt: str
    model: str | None = None
    required_capabilities: list[str] = Field(default_factory=list)
    deadline: datetime | None = None
    result_path: str


class TaskResult(BaseModel):
    """What an external agent posts back; unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")

    assignment_id: str = Field(min_length=1, max_length=64)
    status: ResultStatus
    output: str = Field(default="", max_length=MAX_OUTPUT_CHARS)
    error: str | None = Field(default=None, max_length=2000)
    data: dict[str, Any] = Field(default_factory=dict)
    tokens_in: int = Field(default=0, ge=0)
    tokens_out: int = Field(default=0, ge=0)
    cost_usd: float = Field(default=0.0, ge=0)
