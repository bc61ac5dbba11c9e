"""A/B evaluations of the current tenant's models."""

from __future__ import annotations

from sqlalchemy import select

from domain.errors import NotFound
from domain.evaluation import Evaluation, EvaluationDecision
from resources.database.repositories.base import TenantScopedRepository
from resources.database.schema import EvaluationRow, FineTuningJobRow


def _to_domain(row: EvaluationRow) -> Evaluation:
    return Evaluation(
        id=row.id,
        tenant_id=row.tenant_id,
        job_id=row.job_id,
        base_model=row.base_model,
        candidate_model=row.candidate_model,
        items=row.items,
        base_score=row.base_score,
        candidate_score=row.candidate_score,
        p_value=row.p_value,
        ci_low=row.ci_low,
        ci_high=row.ci_high,
        decision=EvaluationDecision(row.decision),
        details=row.details,
        created_at=row.created_at,
    )


class EvaluationRepository(TenantScopedRepository):
    kind = "evaluation"

    def add(self, evaluation: Evaluation) -> Evaluation:
        tenant = self._owned(evaluation.tenant_id)
        self._require_own(FineTuningJobRow, evaluation.job_id, "fine-tuning job")
        data = evaluation.model_dump()
        data.update(tenant_id=tenant, decision=evaluation.decision.value)
        self._session.add(EvaluationRow(**data))
        self._session.flush()
        return evaluation

    def get(self, evaluation_id: str) -> Evaluation:
        row = self._session.scalars(
            select(EvaluationRow).where(
                EvaluationRow.tenant_id == self.tenant_id, EvaluationRow.id == evaluation_id
            )
        ).first()
        if row is None:
            raise NotFound(self.kind, evaluation_id)
        return _to_domain(row)

    def list(self, job_id: str | None = None) -> list[Evaluation]:
        query = select(EvaluationRow).where(EvaluationRow.tenant_id == self.tenant_id)
        if job_id is not None:
            query = query.where(EvaluationRow.job_id == job_id)
        return [_to_domain(row) for row in self._session.scalars(query.order_by(EvaluationRow.id))]
