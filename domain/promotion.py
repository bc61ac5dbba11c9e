"""Model promotions: the model a tenant's sessions are prompted with, one current at a time.

A promotion names the evaluation that justified it; a rollback retires the current promotion, so
the one before it (or the agents' own default model) is current again.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from domain.clock import utcnow
from domain.domain_model import DomainModel
from domain.ids import new_promotion_id

TUNED_PROVIDER_ID = "indorch-tuned"  # the OpenCode provider that serves a tenant's tuned models


class ModelPromotion(DomainModel):
    id: str = Field(default_factory=new_promotion_id)
    tenant_id: str
    model: str = Field(min_length=1, max_length=200)  # the provider's model id
    job_id: str | None = None
    evaluation_id: str | None = None
    reason: str = Field(default="", max_length=2_000)
    promoted_at: datetime = Field(default_factory=utcnow)
    retired_at: datetime | None = None

    @property
    def opencode_model(self) -> str:
        """The model as OpenCode names it: provider/model."""
        return f"{TUNED_PROVIDER_ID}/{self.model}"
