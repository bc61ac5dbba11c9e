"""A tenant's model evaluations (`services.evaluation_records`): the A/B comparisons of its base
model against a tuned candidate, and what each decided. Any caller of the tenant reads them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from api.authentication import CallerDep
from api.services import ServicesDep
from domain.evaluation import Evaluation, EvaluationDecision

router = APIRouter(prefix="/evaluations", tags=["models"])


class EvaluationOut(BaseModel):
    id: str
    job_id: str | None
    base_model: str
    candidate_model: str
    items: int
    base_score: float
    candidate_score: float
    p_value: float | None
    ci_low: float | None
    ci_high: float | None
    decision: EvaluationDecision
    details: dict[str, Any]
    created_at: datetime

    @classmethod
    def of(cls, evaluation: Evaluation) -> EvaluationOut:
        return cls(**evaluation.model_dump(include=set(cls.model_fields)))


@router.get("")
def list_evaluations(
    caller: CallerDep, wiring: ServicesDep, job_id: str | None = None
) -> list[EvaluationOut]:
    """The tenant's evaluations, of one fine-tuning job's model with `job_id`."""
    assert caller.tenant_id is not None
    found = wiring.factory.evaluations().list(caller, caller.tenant_id, job_id)
    return [EvaluationOut.of(evaluation) for evaluation in found]


@router.get("/{evaluation_id}")
def show(evaluation_id: str, caller: CallerDep, wiring: ServicesDep) -> EvaluationOut:
    assert caller.tenant_id is not None
    found = wiring.factory.evaluations().get(caller, caller.tenant_id, evaluation_id)
    return EvaluationOut.of(found)
