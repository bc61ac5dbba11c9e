"""A/B evaluations of a base model against a fine-tuned candidate on held-out items."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field

from domain.clock import utcnow
from domain.domain_model import DomainModel
from domain.ids import new_evaluation_id


class EvaluationDecision(StrEnum):
    PROMOTE = "PROMOTE"
    KEEP_BASE = "KEEP_BASE"
    INCONCLUSIVE = "INCONCLUSIVE"


class Evaluation(DomainModel):
    id: str = Field(default_factory=new_evaluation_id)
    tenant_id: str
    job_id: str | None = None
    base_model: str = Field(min_length=1, max_length=200)
    candidate_model: str = Field(min_length=1, max_length=200)
    items: int = Field(ge=0)
    base_score: float = Field(ge=0, le=1)
    candidate_score: float = Field(ge=0, le=1)
    p_value: float | None = Field(default=None, ge=0, le=1)
    ci_low: float | None = None
    ci_high: float | None = None
    decision: EvaluationDecision = EvaluationDecision.INCONCLUSIVE
    details: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=utcnow)
