"""Checkpoints: numbered snapshots of a session's progress (1..n, the newest 100 kept)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from domain.clock import utcnow
from domain.domain_model import ValueObject

MAX_CHECKPOINTS_KEPT = 100


class Checkpoint(ValueObject):
    sequence: int = Field(ge=1)
    data: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=utcnow)
