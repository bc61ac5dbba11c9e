"""Fine-tuning: follows each tenant's jobs at the provider, so no process is held while a model
trains, and materializes `fine_tuned_model` for the tenant when its job succeeds.

A tick visits only the tenants with a job to submit or follow (`TenantWorkRepository.
with_training`, one indexed query across tenants), in turns within a time budget.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from domain.fine_tuning import FineTuningJob, FineTuningStatus
from resources.database import Database, unit_of_work
from resources.database_resource import DatabaseResource
from resources.dataset_store import DatasetStore, DatasetStoreResource
from resources.training_provider.resource import TrainingProviderResource
from sensors.tenant_turns import take_turns
from services.fine_tuning import FineTuningService, TrainingProvider

TICK_INTERVAL_SECONDS = 10
TICK_BUDGET_SECONDS = 0.5 * TICK_INTERVAL_SECONDS
FINE_TUNED_MODEL = dg.AssetKey("fine_tuned_model")


@dataclass(frozen=True)
class FollowedJob:
    before: FineTuningStatus
    job: FineTuningJob

    @property
    def succeeded(self) -> bool:
        return self.job.status is FineTuningStatus.COMPLETED and self.before is not (
            FineTuningStatus.COMPLETED
        )


def fine_tuning_tick(
    database: Database,
    provider: TrainingProvider,
    store: DatasetStore,
    cursor: str | None,
    budget_seconds: float | None = TICK_BUDGET_SECONDS,
) -> tuple[list[FollowedJob], str | None]:
    service = FineTuningService(database)
    with unit_of_work(database) as uow:
        tenants = uow.tenant_work.with_training()

    def follow(tenant: str) -> list[FollowedJob]:
        return [
            FollowedJob(job.status, service.follow(tenant, job.id, provider, store.find))
            for job in service.followed(tenant)
        ]

    _, followed, next_cursor = take_turns(tenants, follow, cursor, budget_seconds)
    return followed, next_cursor


def materialization(job: FineTuningJob) -> dg.AssetMaterialization:
    metrics = job.metrics
    return dg.AssetMaterialization(
        asset_key=FINE_TUNED_MODEL,
        partition=job.tenant_id,
        metadata={
            "tenant": job.tenant_id,
            "job_id": job.id,
            "fine_tuned_model": job.fine_tuned_model or "",
            "base_model": job.base_model,
            "dataset": job.dataset_uri or "",
            "loss": metrics.loss if metrics.loss is not None else float("nan"),
            "trained_tokens": metrics.trained_tokens or 0,
            "duration_seconds": metrics.duration_seconds or 0.0,
            "retries": job.retry_count,
        },
    )


@dg.sensor(
    minimum_interval_seconds=TICK_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Follows fine-tuning jobs at the provider; materializes fine_tuned_model when one"
    " succeeds.",
)
def fine_tuning_sensor(
    context: dg.SensorEvaluationContext,
    database: DatabaseResource,
    datasets: DatasetStoreResource,
    training_provider: TrainingProviderResource,
) -> dg.SensorResult | dg.SkipReason:
    db = database.get_database()
    with unit_of_work(db) as uow:
        if not uow.tenant_work.with_training():
            return dg.SkipReason("no fine-tuning job in flight")
    followed, cursor = fine_tuning_tick(
        db, training_provider.client(), datasets.store(), context.cursor
    )
    context.update_cursor(cursor)
    for item in followed:
        if item.before is not item.job.status:
            context.log.info(
                f"tenant {item.job.tenant_id} fine-tuning job {item.job.id}: "
                f"{item.before.value} -> {item.job.status.value}"
            )
    return dg.SensorResult(
        asset_events=[materialization(item.job) for item in followed if item.succeeded]
    )
