"""The current tenant's model promotions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from domain.errors import NotFound
from domain.promotion import ModelPromotion
from resources.database.repositories.base import TenantScopedRepository
from resources.database.schema import EvaluationRow, FineTuningJobRow, ModelPromotionRow


def _to_domain(row: ModelPromotionRow) -> ModelPromotion:
    return ModelPromotion(
        id=row.id,
        tenant_id=row.tenant_id,
        model=row.model,
        job_id=row.job_id,
        evaluation_id=row.evaluation_id,
        reason=row.reason,
        promoted_at=row.promoted_at,
        retired_at=row.retired_at,
    )


class PromotionRepository(TenantScopedRepository):
    kind = "model promotion"

    def add(self, promotion: ModelPromotion) -> ModelPromotion:
        tenant = self._owned(promotion.tenant_id)
        self._require_own(FineTuningJobRow, promotion.job_id, "fine-tuning job")
        self._require_own(EvaluationRow, promotion.evaluation_id, "evaluation")
        self._session.add(ModelPromotionRow(**{**promotion.model_dump(), "tenant_id": tenant}))
        self._session.flush()
        return promotion

    def current(self, *, lock: bool = False) -> ModelPromotion | None:
        """The newest promotion not retired; `lock` for a promotion or a rollback (they take
        turns), never for a submit (which only reads it)."""
        query = (
            select(ModelPromotionRow)
            .where(
                ModelPromotionRow.tenant_id == self.tenant_id,
                ModelPromotionRow.retired_at.is_(None),
            )
            .order_by(ModelPromotionRow.promoted_at.desc(), ModelPromotionRow.id.desc())
            .limit(1)
        )
        row = self._session.scalars(query.with_for_update() if lock else query).first()
        return _to_domain(row) if row else None

    def retire(self, promotion_id: str, at: datetime) -> None:
        row = self._session.scalars(
            select(ModelPromotionRow).where(
                ModelPromotionRow.tenant_id == self.tenant_id,
                ModelPromotionRow.id == promotion_id,
            )
        ).first()
        if row is None:
            raise NotFound(self.kind, promotion_id)
        row.retired_at = at
        self._session.flush()

    def history(self) -> list[ModelPromotion]:
        rows = self._session.scalars(
            select(ModelPromotionRow)
            .where(ModelPromotionRow.tenant_id == self.tenant_id)
            .order_by(ModelPromotionRow.promoted_at.desc(), ModelPromotionRow.id.desc())
        )
        return [_to_domain(row) for row in rows]
