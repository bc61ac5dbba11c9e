"""A tenant's fine-tuning jobs (`services.fine_tuning`): listed and shown to any of its callers,
cancelled by its LEAD or ADMIN (at the provider first, for a job the provider holds; a finished
job answers 409). Jobs are started by the learning loop (`fine_tuned_model`), not here."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from api.authentication import CallerDep
from api.services import ServicesDep
from domain.fine_tuning import FineTuningJob, FineTuningStatus, TrainingMetrics, TrainingParameters

router = APIRouter(prefix="/fine-tuning-jobs", tags=["models"])


class JobOut(BaseModel):
    id: str
    base_model: str
    dataset_uri: str | None
    parameters: TrainingParameters
    metrics: TrainingMetrics
    provider_job_id: str | None
    fine_tuned_model: str | None
    model_version: str | None
    status: FineTuningStatus
    status_reason: str
    retry_count: int
    error: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, job: FineTuningJob) -> JobOut:
        fields = set(cls.model_fields) - {"parameters", "metrics"}
        return cls(**job.model_dump(include=fields), parameters=job.parameters, metrics=job.metrics)


@router.get("")
def list_jobs(caller: CallerDep, wiring: ServicesDep) -> list[JobOut]:
    assert caller.tenant_id is not None
    return [JobOut.of(job) for job in wiring.factory.fine_tuning().list(caller, caller.tenant_id)]


@router.get("/{job_id}")
def show(job_id: str, caller: CallerDep, wiring: ServicesDep) -> JobOut:
    assert caller.tenant_id is not None
    return JobOut.of(wiring.factory.fine_tuning().get(caller, caller.tenant_id, job_id))


@router.post("/{job_id}/cancel")
def cancel(job_id: str, caller: CallerDep, wiring: ServicesDep) -> JobOut:
    assert caller.tenant_id is not None
    service = wiring.factory.fine_tuning()
    return JobOut.of(service.cancel(caller, caller.tenant_id, job_id, wiring.provider))
