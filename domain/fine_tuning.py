"""Fine-tuning jobs: a tenant's model trained on its own successful sessions."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from pydantic import Field, field_validator

from domain.clock import utcnow
from domain.domain_model import DomainModel, ValueObject
from domain.ids import new_job_id
from domain.state_machine import StateMachine, Transitions

SEMVER_PATTERN = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")


class FineTuningStatus(StrEnum):
    PENDING = "PENDING"
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    EVALUATING = "EVALUATING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


_F = FineTuningStatus
FINE_TUNING_MACHINE: StateMachine[FineTuningStatus] = StateMachine(
    "fine_tuning_job",
    {
        _F.PENDING: frozenset({_F.QUEUED, _F.CANCELLED}),
        _F.QUEUED: frozenset({_F.RUNNING, _F.CANCELLED, _F.FAILED}),
        _F.RUNNING: frozenset({_F.EVALUATING, _F.COMPLETED, _F.FAILED, _F.CANCELLED}),
        _F.EVALUATING: frozenset({_F.COMPLETED, _F.FAILED}),
        _F.FAILED: frozenset({_F.PENDING}),
        _F.CANCELLED: frozenset({_F.PENDING}),
        _F.COMPLETED: frozenset(),
    },
)


class TrainingParameters(ValueObject):
    epochs: int = Field(default=3, ge=1, le=100)
    learning_rate: float = Field(default=2e-4, gt=0, le=1)
    batch_size: int = Field(default=8, ge=1, le=1024)
    lora_rank: int = Field(default=16, ge=1, le=512)
    lora_alpha: int = Field(default=32, ge=1, le=1024)


class TrainingMetrics(ValueObject):
    loss: float | None = None
    eval_loss: float | None = None
    accuracy: float | None = Field(default=None, ge=0, le=1)
    duration_seconds: float | None = Field(default=None, ge=0)
    trained_tokens: int | None = Field(default=None, ge=0)


def next_model_version(current: str | None, bump: str = "minor") -> str:
    """The semver after `current` (None gives 0.1.0)."""
    if current is None:
        return "0.1.0"
    match = SEMVER_PATTERN.fullmatch(current)
    if not match:
        raise ValueError(f"{current!r} is not a semantic version")
    major, minor, patch = (int(part) for part in match.groups())
    if bump == "major":
        return f"{major + 1}.0.0"
    if bump == "minor":
        return f"{major}.{minor + 1}.0"
    if bump == "patch":
        return f"{major}.{minor}.{patch + 1}"
    raise ValueError(f"unknown bump {bump!r}")


class FineTuningJob(Transitions, DomainModel):
    machine: ClassVar[StateMachine[FineTuningStatus]] = FINE_TUNING_MACHINE

    id: str = Field(default_factory=new_job_id)
    tenant_id: str
    base_model: str = Field(min_length=1, max_length=200)
    dataset_uri: str | None = None
    parameters: TrainingParameters = Field(default_factory=TrainingParameters)
    metrics: TrainingMetrics = Field(default_factory=TrainingMetrics)
    provider_job_id: str | None = None
    fine_tuned_model: str | None = None
    model_version: str | None = None
    status: FineTuningStatus = FineTuningStatus.PENDING
    status_reason: str = ""
    retry_count: int = Field(default=0, ge=0)
    error: dict[str, Any] | None = None
    version: int = Field(default=1, ge=1)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)

    @field_validator("model_version")
    @classmethod
    def _semver(cls, value: str | None) -> str | None:
        if value is not None and not SEMVER_PATTERN.fullmatch(value):
            raise ValueError(f"{value!r} is not a semantic version like 1.2.3")
        return value

    def _on_transition(self, target: FineTuningStatus, at: datetime) -> None:
        if target is FineTuningStatus.PENDING:  # back from FAILED or CANCELLED: a retry
            self.retry_count += 1
