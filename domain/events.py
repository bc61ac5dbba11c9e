"""Domain events: every state transition produces one, and persistence stores it durably."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class StatusChanged(BaseModel):
    """A transition of a session, task or fine-tuning job: old, new, when, why."""

    model_config = ConfigDict(frozen=True)

    entity_kind: str
    entity_id: str
    tenant_id: str
    old_status: str
    new_status: str
    at: datetime
    reason: str = ""
    data: dict[str, Any] = Field(default_factory=dict)

    @property
    def event_type(self) -> str:
        return f"{self.entity_kind}.status_changed"


class SessionEvent(BaseModel):
    """One entry of a session's durable history, numbered 1..n per session."""

    model_config = ConfigDict(frozen=True)

    session_id: str
    tenant_id: str
    seq: int
    event_type: str
    old_status: str | None = None
    new_status: str | None = None
    reason: str = ""
    data: dict[str, Any] = Field(default_factory=dict)
    at: datetime
