"""`training_dataset` (partition = tenant): the tenant's completed sessions as fine-tuning data.

Downstream of `coding_sessions`. Its checks run on the files as written; `minimum_examples` and
the others are blocking, so a dataset that fails one never reaches a fine-tuning job.
"""

import json

import dagster as dg
from pydantic import Field

from assets.coding_sessions import CODING_SESSIONS
from domain.caller import Caller
from domain.training_examples import DatasetPolicy
from resources.dagster_partitions import tenant_partitions
from resources.database_resource import DatabaseResource
from resources.dataset_store import DatasetStoreResource
from services.dataset_checks import check_dataset
from services.training_data import TrainingDataService

CHECKS = ("minimum_examples", "no_duplicates", "no_secrets", "eval_held_out")
PREVIEW_EXAMPLES = 3


class TrainingDatasetConfig(dg.Config):
    eval_fraction: float = Field(default=0.2, description="Share of examples held out.")
    min_answer_chars: int = Field(default=1, description="Shortest final answer kept.")
    max_attempts: int | None = Field(default=None, description="Sessions needing more are out.")
    require_changes: bool = Field(default=False, description="Only sessions that changed files.")
    min_examples: int = Field(default=10, description="Fewest training examples to pass.")


@dg.asset(
    partitions_def=tenant_partitions,
    deps=[CODING_SESSIONS],
    group_name="models",
    kinds={"jsonl"},
    automation_condition=dg.AutomationCondition.on_cron("0 3 * * *"),
    check_specs=[
        dg.AssetCheckSpec(name, asset="training_dataset", blocking=True) for name in CHECKS
    ],
    description="The tenant's good sessions as chat-format JSONL, secrets scrubbed, deduplicated,"
    " an evaluation split held out.",
)
def training_dataset(
    context: dg.AssetExecutionContext,
    config: TrainingDatasetConfig,
    database: DatabaseResource,
    datasets: DatasetStoreResource,
) -> dg.MaterializeResult:
    tenant = context.partition_key
    policy = DatasetPolicy(
        eval_fraction=config.eval_fraction,
        min_answer_chars=config.min_answer_chars,
        max_attempts=config.max_attempts,
        require_changes=config.require_changes,
    )
    service = TrainingDataService(database.get_database(), datasets.store())
    built = service.build(Caller.operator(), tenant, policy)
    dataset, stored = built.dataset, built.stored
    context.log.info(
        "tenant %s: %d training and %d evaluation examples (dataset %s)",
        tenant,
        len(dataset.train),
        len(dataset.eval),
        stored.version,
    )
    preview = "\n".join(
        json.dumps({"messages": e.messages}) for e in dataset.train[:PREVIEW_EXAMPLES]
    )
    return dg.MaterializeResult(
        metadata={
            "tenant": tenant,
            "dataset_version": stored.version,
            "train_examples": len(dataset.train),
            "eval_examples": len(dataset.eval),
            "skipped": dg.MetadataValue.json(dataset.skipped),
            "duplicates_removed": dataset.duplicates_removed,
            "secrets_scrubbed": dataset.secrets_scrubbed,
            "token_estimate": dataset.token_estimate,
            "train_file": dg.MetadataValue.path(str(stored.train_path)),
            "eval_file": dg.MetadataValue.path(str(stored.eval_path)),
            "preview": dg.MetadataValue.md(f"```json\n{preview}\n```"),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=check.name,
                passed=check.passed,
                metadata={"detail": check.detail},
            )
            for check in check_dataset(stored, config.min_examples)
        ],
    )
