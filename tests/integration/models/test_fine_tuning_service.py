"""Fine-tuning jobs against the stand-in provider over HTTP, on both databases: submitted,
followed to the tuned model, failed with the provider's reason, retried, cancelled."""

from __future__ import annotations

import time

import pytest

from domain.caller import Caller
from domain.errors import NotAllowedInStatus
from domain.fine_tuning import FineTuningJob, FineTuningStatus, TrainingParameters
from domain.training_examples import DatasetPolicy, SessionTranscript, build_dataset
from resources.database import Database, tenant_scope, unit_of_work
from resources.dataset_store import DatasetStore, StoredDataset
from resources.training_provider.resource import TrainingProviderResource
from services.fine_tuning import FineTuningService
from tests.integration.database.support import BACKENDS, new_tenant
from tests.integration.models.conftest import BASE_MODEL

pytestmark = pytest.mark.parametrize("database", BACKENDS, indirect=True)
OPERATOR = Caller.operator()
FINAL = {FineTuningStatus.COMPLETED, FineTuningStatus.FAILED, FineTuningStatus.CANCELLED}


def dataset(store: DatasetStore, tenant: str, count: int = 12) -> StoredDataset:
    sessions = [
        SessionTranscript(
            session_id=f"IND-{n}",
            title=f"t{n}",
            prompt=f"How is component {n} of {tenant} built?",
            answer=f"Component {n} is built with `make c{n}`.",
        )
        for n in range(count)
    ]
    return store.write(build_dataset(tenant, sessions, DatasetPolicy(eval_fraction=0.0)))


def follow_until_final(service, tenant, job, provider, store, seconds=30.0) -> FineTuningJob:
    deadline = time.monotonic() + seconds
    while job.status not in FINAL and time.monotonic() < deadline:
        time.sleep(0.1)
        job = service.follow(tenant, job.id, provider, store.find)
    return job


def test_a_job_is_submitted_and_followed_to_the_tuned_model(database, provider, tmp_path):
    tenant = new_tenant(database, "acme")
    store = DatasetStore(tmp_path / "datasets")
    service = FineTuningService(database)
    job = service.submit(
        OPERATOR,
        tenant,
        dataset=dataset(store, tenant),
        base_model=BASE_MODEL,
        parameters=TrainingParameters(epochs=2, batch_size=4),
        provider=provider,
    )
    assert job.status is FineTuningStatus.QUEUED and job.provider_job_id

    job = follow_until_final(service, tenant, job, provider, store)

    assert job.status is FineTuningStatus.COMPLETED
    assert job.fine_tuned_model and job.fine_tuned_model.startswith(f"ft:{BASE_MODEL}:")
    assert job.metrics.loss is not None and job.metrics.trained_tokens
    with tenant_scope(tenant), unit_of_work(database) as uow:
        moves = [e.new_status for e in uow.fine_tuning_jobs.history(job.id)]
    assert moves == ["QUEUED", "RUNNING", "COMPLETED"]
    with pytest.raises(NotAllowedInStatus, match="only a"):
        service.cancel(OPERATOR, tenant, job.id, lambda: provider)


def test_malformed_training_data_fails_with_the_providers_error_after_its_retries(
    database: Database, provider, tmp_path
):
    tenant = new_tenant(database, "acme")
    store = DatasetStore(tmp_path / "datasets")
    stored = dataset(store, tenant)
    stored.train_path.write_text("this is not JSONL\n")
    service = FineTuningService(database, max_retries=1)
    job = service.submit(
        OPERATOR,
        tenant,
        dataset=stored,
        base_model=BASE_MODEL,
        parameters=TrainingParameters(),
        provider=provider,
    )
    job = follow_until_final(service, tenant, job, provider, store)
    assert job.status is FineTuningStatus.FAILED
    assert job.retry_count == 1
    assert job.error and job.error["code"] == "invalid_training_file"
    assert "invalid_training_file" in job.status_reason


def test_a_provider_that_is_down_leaves_the_job_queued_then_failed(database, tmp_path):
    tenant = new_tenant(database, "acme")
    store = DatasetStore(tmp_path / "datasets")
    down = TrainingProviderResource(
        base_url="http://127.0.0.1:9/v1", api_key="sk-x", max_retries=0, timeout_seconds=2
    ).client()
    service = FineTuningService(database, submit_attempts=3)
    job = service.submit(
        OPERATOR,
        tenant,
        dataset=dataset(store, tenant),
        base_model=BASE_MODEL,
        parameters=TrainingParameters(),
        provider=down,
    )
    assert job.status is FineTuningStatus.QUEUED and job.provider_job_id is None
    assert job.error["submit_attempts"] == 1
    for _ in range(2):
        job = service.follow(tenant, job.id, down, store.find)
    assert job.status is FineTuningStatus.FAILED
    assert "not submitted after 3 attempts" in job.status_reason


def test_a_running_job_is_cancelled_at_the_provider(database, provider, tmp_path):
    tenant = new_tenant(database, "acme")
    store = DatasetStore(tmp_path / "datasets")
    service = FineTuningService(database)
    job = service.submit(
        OPERATOR,
        tenant,
        dataset=dataset(store, tenant, 40),
        base_model=BASE_MODEL,
        parameters=TrainingParameters(epochs=20),
        provider=provider,
    )
    job = service.cancel(OPERATOR, tenant, job.id, lambda: provider)
    assert job.status is FineTuningStatus.CANCELLED
    assert provider.retrieve_job(job.provider_job_id).status.value == "cancelled"
