"""Promoting a tenant's tuned model (only on an evaluation that found it better) and rolling it
back: the tenant's new sessions are prompted with the current promotion's model."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from domain.caller import Caller
from domain.clock import utcnow
from domain.errors import NotFound, PromotionRefused
from domain.evaluation import EvaluationDecision
from domain.promotion import ModelPromotion
from domain.tenant import Role
from resources.database import Database, tenant_scope, unit_of_work


class ModelPromotionService:
    def __init__(self, database: Database, clock: Callable[[], datetime] = utcnow) -> None:
        self._database = database
        self._clock = clock

    def promote(self, caller: Caller, tenant: str, evaluation_id: str) -> ModelPromotion:
        """The evaluation's candidate becomes the tenant's model (the same model again: the
        current promotion is kept)."""
        caller.require_tenant(tenant)
        caller.require(Role.LEAD, "promote a model")
        with tenant_scope(tenant), unit_of_work(self._database) as uow:
            evaluation = uow.evaluations.get(evaluation_id)
            if evaluation.decision is not EvaluationDecision.PROMOTE:
                raise PromotionRefused(
                    evaluation.id,
                    evaluation.decision.value,
                    str(evaluation.details.get("reason", "")),
                )
            current = uow.promotions.current(lock=True)
            if current is not None and current.model == evaluation.candidate_model:
                return current
            return uow.promotions.add(
                ModelPromotion(
                    tenant_id=tenant,
                    model=evaluation.candidate_model,
                    job_id=evaluation.job_id,
                    evaluation_id=evaluation.id,
                    reason=str(evaluation.details.get("reason", "")),
                    promoted_at=self._clock(),
                )
            )

    def rollback(self, caller: Caller, tenant: str) -> ModelPromotion | None:
        """Retire the current promotion; the one before it is current again (None: the agents'
        own model). `NotFound` when nothing is promoted."""
        caller.require_tenant(tenant)
        caller.require(Role.LEAD, "roll back a model")
        with tenant_scope(tenant), unit_of_work(self._database) as uow:
            current = uow.promotions.current(lock=True)
            if current is None:
                raise NotFound("model promotion", tenant)
            uow.promotions.retire(current.id, self._clock())
            return uow.promotions.current()

    def current(self, caller: Caller, tenant: str) -> ModelPromotion | None:
        caller.require_tenant(tenant)
        caller.require(Role.VIEWER, "show the promoted model")
        with tenant_scope(tenant), unit_of_work(self._database) as uow:
            return uow.promotions.current()

    def history(self, caller: Caller, tenant: str) -> list[ModelPromotion]:
        caller.require_tenant(tenant)
        caller.require(Role.VIEWER, "list model promotions")
        with tenant_scope(tenant), unit_of_work(self._database) as uow:
            return uow.promotions.history()
