"""Metered usage of a tenant on one day, the unit of billing."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from pydantic import Field

from domain.domain_model import ValueObject


class DailyUsage(ValueObject):
    tenant_id: str
    day: date
    sessions: int = Field(default=0, ge=0)
    tokens_in: int = Field(default=0, ge=0)
    tokens_out: int = Field(default=0, ge=0)
    cost_usd: Decimal = Field(default=Decimal(0), ge=0)
    agent_seconds: float = Field(default=0.0, ge=0)
    fine_tuning_tokens: int = Field(default=0, ge=0)

    @property
    def total_tokens(self) -> int:
        """Every token the tenant's budget counts: sessions' and its models' training."""
        return self.tokens_in + self.tokens_out + self.fine_tuning_tokens

    @property
    def agent_minutes(self) -> float:
        return self.agent_seconds / 60
