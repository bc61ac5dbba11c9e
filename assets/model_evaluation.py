"""`model_evaluation` (partition = tenant): the tenant's tuned model against its base model on the
held-out items of the dataset it was trained on, paired per item.

Its blocking check `tuned_model_is_better` passes only when the promotion rule holds (enough
items, the 95 % interval's lower bound above the margin, McNemar significant): a failed check
stops `model_promotion` downstream.
"""

import dagster as dg
from pydantic import Field

from assets.fine_tuned_model import fine_tuned_model
from domain.ab_comparison import PromotionRule
from domain.answer_grading import DEFAULT_THRESHOLD
from domain.caller import Caller
from resources.dagster_materializations import latest_metadata
from resources.dagster_partitions import tenant_partitions
from resources.database_resource import DatabaseResource
from resources.dataset_store import DatasetStoreResource
from resources.training_provider.resource import TrainingProviderResource
from services.fine_tuning import DATASET_URI_PREFIX
from services.model_evaluation import ModelEvaluationService

CHECK = "tuned_model_is_better"


class EvaluationConfig(dg.Config):
    margin: float = Field(default=0.0, description="The interval's lower bound must exceed it.")
    min_items: int = Field(default=10, description="Fewest held-out items to decide on.")
    alpha: float = Field(default=0.05, description="McNemar's significance level.")
    seed: int = Field(default=0, description="The bootstrap's seed (same seed, same interval).")
    threshold: float = Field(default=DEFAULT_THRESHOLD, description="Token F1 to count as right.")


@dg.asset(
    partitions_def=tenant_partitions,
    deps=[fine_tuned_model],
    group_name="models",
    kinds={"scipy"},
    automation_condition=dg.AutomationCondition.eager(),
    check_specs=[dg.AssetCheckSpec(CHECK, asset="model_evaluation", blocking=True)],
    description="Base vs tuned model on the held-out items: accuracies, win rate, paired-bootstrap"
    " 95 % interval of the difference, McNemar's exact p-value.",
)
def model_evaluation(
    context: dg.AssetExecutionContext,
    config: EvaluationConfig,
    database: DatabaseResource,
    datasets: DatasetStoreResource,
    training_provider: TrainingProviderResource,
) -> dg.MaterializeResult:
    tenant = context.partition_key
    tuned = latest_metadata(context.instance, "fine_tuned_model", tenant)
    rule = PromotionRule(margin=config.margin, min_items=config.min_items, alpha=config.alpha)

    def progress(done: int, total: int) -> None:
        if done % 50 == 0 or done == total:
            context.log.info("tenant %s: %d of %d held-out items answered", tenant, done, total)

    evaluation, comparison = ModelEvaluationService(
        database.get_database(), datasets.store(), training_provider.client()
    ).evaluate(
        Caller.operator(),
        tenant,
        dataset_version=str(tuned["dataset"]).removeprefix(DATASET_URI_PREFIX),
        base_model=str(tuned["base_model"]),
        candidate_model=str(tuned["fine_tuned_model"]),
        job_id=str(tuned["job_id"]),
        rule=rule,
        seed=config.seed,
        threshold=config.threshold,
        progress=progress,
    )
    reason = str(evaluation.details["reason"])
    return dg.MaterializeResult(
        metadata={
            "tenant": tenant,
            "evaluation_id": evaluation.id,
            "decision": evaluation.decision.value,
            "reason": reason,
            "items": comparison.items,
            "base_model": evaluation.base_model,
            "tuned_model": evaluation.candidate_model,
            "base_accuracy": comparison.base_accuracy,
            "tuned_accuracy": comparison.tuned_accuracy,
            "difference": comparison.difference,
            "ci_low": comparison.ci_low,
            "ci_high": comparison.ci_high,
            "win_rate": comparison.win_rate if comparison.win_rate is not None else float("nan"),
            "mcnemar_p": comparison.mcnemar_p,
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=CHECK,
                passed=evaluation.decision.value == "PROMOTE",
                metadata={"reason": reason, "margin": config.margin},
            )
        ],
    )
