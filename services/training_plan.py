"""Whether a tenant's model should be trained again on its latest dataset: not while a job is in
flight, not twice on the same data, and only once the dataset grew enough to matter."""

from __future__ import annotations

from dataclasses import dataclass

from domain.fine_tuning import FineTuningStatus
from resources.database import Database, tenant_scope, unit_of_work
from resources.dataset_store import DatasetStore
from services.fine_tuning import DATASET_URI_PREFIX

IN_FLIGHT = {FineTuningStatus.PENDING, FineTuningStatus.QUEUED, FineTuningStatus.RUNNING}


@dataclass(frozen=True)
class TrainingDecision:
    train: bool
    reason: str


def training_decision(
    database: Database,
    store: DatasetStore,
    tenant: str,
    version: str,
    min_new_examples: int,
    min_examples: int = 10,
) -> TrainingDecision:
    examples = _examples(store, tenant, version)
    if examples < min_examples:  # the dataset's own check failed: nothing worth a job
        return TrainingDecision(
            False, f"dataset {version} has {examples} training examples, {min_examples} needed"
        )
    with tenant_scope(tenant), unit_of_work(database) as uow:
        jobs = uow.fine_tuning_jobs.list()
    if running := [job for job in jobs if job.status in IN_FLIGHT]:
        return TrainingDecision(False, f"job {running[-1].id} is still {running[-1].status}")
    completed = [job for job in jobs if job.status is FineTuningStatus.COMPLETED]
    if not completed:
        return TrainingDecision(True, "the tenant's first model")
    last = max(completed, key=lambda job: job.created_at)
    last_version = (last.dataset_uri or "").removeprefix(DATASET_URI_PREFIX)
    if last_version == version:
        return TrainingDecision(False, f"job {last.id} was trained on dataset {version} already")
    grown = examples - _examples(store, tenant, last_version)
    if grown < min_new_examples:
        return TrainingDecision(
            False, f"{grown} new examples since job {last.id}, {min_new_examples} needed"
        )
    return TrainingDecision(True, f"{grown} new examples since job {last.id}")


def _examples(store: DatasetStore, tenant: str, version: str) -> int:
    path = store.find(tenant, version).train_path
    return len(path.read_text().splitlines()) if path.exists() else 0
