"""`fine_tuned_model` (partition = tenant): the tenant's model trained on its latest dataset.

A run of this asset only hands the job to the provider and returns: it materializes nothing
itself. `sensors.fine_tuning` follows the job and materializes the asset when the provider's job
succeeds (no process is held while the model trains). A dataset that has not grown by
`min_new_examples` since the last job is not trained again.
"""

import dagster as dg
from pydantic import Field

from assets.training_dataset import training_dataset
from domain.caller import Caller
from domain.fine_tuning import TrainingParameters
from resources.dagster_materializations import latest_dataset_version
from resources.dagster_partitions import tenant_partitions
from resources.database_resource import DatabaseResource
from resources.dataset_store import DatasetStoreResource
from resources.training_provider.resource import TrainingProviderResource
from services.fine_tuning import FineTuningService
from services.training_plan import training_decision


class FineTuneConfig(dg.Config):
    base_model: str = Field(default="base-coder", description="The provider's base model.")
    epochs: int = Field(default=3, description="Passes over the training file.")
    batch_size: int = Field(default=8, description="Examples per step.")
    learning_rate: float = Field(default=2e-4, description="Base learning rate.")
    min_new_examples: int = Field(
        default=10, description="Train again only when the dataset grew by this many examples."
    )
    min_examples: int = Field(
        default=10, description="No job on a dataset with fewer training examples than this."
    )


@dg.asset(
    partitions_def=tenant_partitions,
    deps=[training_dataset],
    output_required=False,
    group_name="models",
    kinds={"openai"},
    automation_condition=dg.AutomationCondition.eager(),
    description="The tenant's fine-tuned model; materialized by the fine-tuning sensor when the"
    " provider's job succeeds.",
)
def fine_tuned_model(
    context: dg.AssetExecutionContext,
    config: FineTuneConfig,
    database: DatabaseResource,
    datasets: DatasetStoreResource,
    training_provider: TrainingProviderResource,
):
    tenant = context.partition_key
    version = latest_dataset_version(context.instance, tenant)
    db, store = database.get_database(), datasets.store()
    decision = training_decision(
        db, store, tenant, version, config.min_new_examples, config.min_examples
    )
    if not decision.train:
        context.log.info("tenant %s: no fine-tuning job: %s", tenant, decision.reason)
        return
    job = FineTuningService(db).submit(
        Caller.operator(),
        tenant,
        dataset=store.find(tenant, version),
        base_model=config.base_model,
        parameters=TrainingParameters(
            epochs=config.epochs, batch_size=config.batch_size, learning_rate=config.learning_rate
        ),
        provider=training_provider.client(),
    )
    context.log.info(
        "tenant %s: fine-tuning job %s %s (provider job %s); the fine-tuning sensor follows it",
        tenant,
        job.id,
        job.status.value,
        job.provider_job_id,
    )
    yield from ()
