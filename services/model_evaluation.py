"""A/B evaluation of a tenant's base model against its tuned candidate on the held-out items.

Both models answer every held-out question; each answer is graded against the reference the
tenant's own session gave, so the two outcomes of an item are paired, and the comparison and the
promotion rule are the domain's. The models are reached through `ChatModels`, the provider port
(the OpenAI-compatible adapter in production and in the tests, against the stand-in provider).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from domain.ab_comparison import PairedComparison, PromotionRule, compare_paired
from domain.answer_grading import DEFAULT_THRESHOLD, is_right
from domain.caller import Caller
from domain.evaluation import Evaluation, EvaluationDecision
from domain.tenant import Role
from resources.database import Database, tenant_scope, unit_of_work
from resources.dataset_store import DatasetStore

ITEMS_KEPT_IN_DETAILS = 200


class ChatModels(Protocol):
    def complete(self, model: str, messages: list[dict[str, Any]]) -> str:
        """The model's answer to the conversation."""


class ModelEvaluationService:
    def __init__(self, database: Database, store: DatasetStore, models: ChatModels) -> None:
        self._database = database
        self._store = store
        self._models = models

    def evaluate(
        self,
        caller: Caller,
        tenant: str,
        *,
        dataset_version: str,
        base_model: str,
        candidate_model: str,
        job_id: str | None,
        rule: PromotionRule,
        seed: int = 0,
        threshold: float = DEFAULT_THRESHOLD,
        progress: Callable[[int, int], None] | None = None,
    ) -> tuple[Evaluation, PairedComparison]:
        caller.require_tenant(tenant)
        caller.require(Role.LEAD, "evaluate a model")
        items = self._store.read_eval(tenant, dataset_version)
        base_right, tuned_right, outcomes = [], [], []
        for index, item in enumerate(items, start=1):
            base_answer = self._models.complete(base_model, item.messages)
            tuned_answer = self._models.complete(candidate_model, item.messages)
            base_ok = is_right(item.reference, base_answer, threshold)
            tuned_ok = is_right(item.reference, tuned_answer, threshold)
            base_right.append(base_ok)
            tuned_right.append(tuned_ok)
            outcomes.append({"key": item.key[:12], "base": base_ok, "tuned": tuned_ok})
            if progress:
                progress(index, len(items))
        comparison = compare_paired(base_right, tuned_right, seed=seed)
        decision = rule.decide(comparison)
        evaluation = Evaluation(
            tenant_id=tenant,
            job_id=job_id,
            base_model=base_model,
            candidate_model=candidate_model,
            items=comparison.items,
            base_score=comparison.base_accuracy,
            candidate_score=comparison.tuned_accuracy,
            p_value=comparison.mcnemar_p,
            ci_low=comparison.ci_low,
            ci_high=comparison.ci_high,
            decision=EvaluationDecision.PROMOTE
            if decision.promote
            else EvaluationDecision.KEEP_BASE,
            details={
                "dataset_version": dataset_version,
                "reason": decision.reason,
                "rule": rule.model_dump(),
                "comparison": comparison.model_dump(),
                "threshold": threshold,
                "items": outcomes[:ITEMS_KEPT_IN_DETAILS],
            },
        )
        with tenant_scope(tenant), unit_of_work(self._database) as uow:
            return uow.evaluations.add(evaluation), comparison
