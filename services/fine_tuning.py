"""Fine-tuning a tenant's model at the provider, followed without holding a process.

A job is QUEUED while we hand it to the provider (upload, then create); a provider that does not
answer leaves it QUEUED for the next follow to try again, and after `submit_attempts` tries it is
FAILED with the provider's reason. Once submitted, each follow reads the provider's job and moves
ours along (`domain.provider_job.follow_provider`); a job the provider failed is retried as a new
provider job while it has retries left (FAILED -> PENDING -> QUEUED, the machine of MISSION.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from domain.caller import Caller
from domain.clock import utcnow
from domain.errors import DomainError
from domain.fine_tuning import FineTuningJob, FineTuningStatus, TrainingParameters
from domain.provider_job import ProviderJobState, ensure_cancellable, follow_provider
from domain.tenant import Role
from resources.database import Database, tenant_scope, unit_of_work
from resources.dataset_store import StoredDataset

logger = logging.getLogger(__name__)
DATASET_URI_PREFIX = "dataset:"
FOLLOWED = {FineTuningStatus.QUEUED, FineTuningStatus.RUNNING}


class TrainingProvider(Protocol):
    """The provider port (`resources.training_provider.TrainingProviderClient`)."""

    def upload_training_file(self, content: bytes, filename: str): ...

    def create_job(
        self,
        training_file_id: str,
        base_model: str,
        parameters: TrainingParameters,
        *,
        suffix: str | None = None,
        seed: int | None = None,
    ) -> ProviderJobState: ...

    def retrieve_job(self, provider_job_id: str) -> ProviderJobState: ...

    def job_events(self, provider_job_id: str) -> list: ...

    def cancel_job(self, job: FineTuningJob) -> ProviderJobState: ...


class FineTuningService:
    def __init__(
        self,
        database: Database,
        *,
        max_retries: int = 2,
        submit_attempts: int = 5,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._database = database
        self._max_retries = max_retries
        self._submit_attempts = submit_attempts
        self._clock = clock

    # --- reads ---------------------------------------------------------------------------------

    def list(self, caller: Caller, tenant: str) -> list[FineTuningJob]:
        caller.require_tenant(tenant)
        caller.require(Role.VIEWER, "list fine-tuning jobs")
        with tenant_scope(tenant), unit_of_work(self._database) as uow:
            return uow.fine_tuning_jobs.list()

    def get(self, caller: Caller, tenant: str, job_id: str) -> FineTuningJob:
        caller.require_tenant(tenant)
        caller.require(Role.VIEWER, "show a fine-tuning job")
        with tenant_scope(tenant), unit_of_work(self._database) as uow:
            return uow.fine_tuning_jobs.get(job_id)

    def followed(self, tenant: str) -> list[FineTuningJob]:
        """The tenant's jobs a follow has something to do for."""
        with tenant_scope(tenant), unit_of_work(self._database) as uow:
            return uow.fine_tuning_jobs.list(FOLLOWED)

    # --- writes --------------------------------------------------------------------------------

    def submit(
        self,
        caller: Caller,
        tenant: str,
        *,
        dataset: StoredDataset,
        base_model: str,
        parameters: TrainingParameters,
        provider: TrainingProvider,
    ) -> FineTuningJob:
        """Record the job and hand it to the provider; returns once submitted (or left QUEUED
        for the next follow when the provider did not answer)."""
        caller.require_tenant(tenant)
        caller.require(Role.LEAD, "start a fine-tuning job")
        job = FineTuningJob(
            tenant_id=tenant,
            base_model=base_model,
            dataset_uri=f"{DATASET_URI_PREFIX}{dataset.version}",
            parameters=parameters,
        )
        with tenant_scope(tenant), unit_of_work(self._database) as uow:
            uow.fine_tuning_jobs.add(job)
            event = job.transition_to(FineTuningStatus.QUEUED, "queued for the provider")
            uow.fine_tuning_jobs.save_transition(job, event)
        return self._hand_over(job, dataset, provider)

    def follow(
        self,
        tenant: str,
        job_id: str,
        provider: TrainingProvider,
        datasets: Callable[[str, str], StoredDataset],
    ) -> FineTuningJob:
        """One look at the provider for the job: submit it if it is not yet, else follow it;
        `datasets(tenant, version)` finds the files of a job to (re)submit."""
        with tenant_scope(tenant), unit_of_work(self._database) as uow:
            job = uow.fine_tuning_jobs.get(job_id)
        if job.status not in FOLLOWED:
            return job
        if job.provider_job_id is None:
            return self._hand_over(job, datasets(tenant, _dataset_version(job)), provider)
        try:
            state = provider.retrieve_job(job.provider_job_id)
            metrics = provider.job_events(job.provider_job_id)
        except DomainError as error:  # unreachable for now: the next follow looks again
            logger.warning("tenant %s: fine-tuning job %s not followed: %s", tenant, job.id, error)
            return job
        events = follow_provider(job, state, at=self._clock())
        losses = [e.data["train_loss"] for e in metrics if e.data and "train_loss" in e.data]
        if losses:
            job.metrics = job.metrics.model_copy(update={"loss": losses[-1]})
        with tenant_scope(tenant), unit_of_work(self._database) as uow:
            uow.fine_tuning_jobs.save_transitions(job, events)
        for event in events:
            logger.info("tenant %s: fine-tuning job %s -> %s", tenant, job.id, event.new_status)
        if job.status is FineTuningStatus.FAILED and job.retry_count < self._max_retries:
            return self._retry(job, datasets(tenant, _dataset_version(job)), provider)
        return job

    def cancel(
        self,
        caller: Caller,
        tenant: str,
        job_id: str,
        provider: Callable[[], TrainingProvider],
    ) -> FineTuningJob:
        """Cancel at the provider, then here. `provider()` gives the provider: called only for
        a job the provider holds (one still QUEUED here never reached it, so an unconfigured
        provider does not stop its cancel)."""
        caller.require_tenant(tenant)
        caller.require(Role.LEAD, "cancel a fine-tuning job")
        with tenant_scope(tenant), unit_of_work(self._database) as uow:
            job = uow.fine_tuning_jobs.get(job_id)
        ensure_cancellable(job)  # a finished job: refused before the provider is asked
        if job.provider_job_id is not None:
            provider().cancel_job(job)
        with tenant_scope(tenant), unit_of_work(self._database) as uow:
            event = job.transition_to(FineTuningStatus.CANCELLED, "cancelled", at=self._clock())
            uow.fine_tuning_jobs.save_transition(job, event)
        return job

    # --- the provider --------------------------------------------------------------------------

    def _hand_over(
        self, job: FineTuningJob, dataset: StoredDataset, provider: TrainingProvider
    ) -> FineTuningJob:
        tries = int((job.error or {}).get("submit_attempts", 0)) + 1
        try:
            uploaded = provider.upload_training_file(
                dataset.train_path.read_bytes(), f"{job.tenant_id}-{dataset.version}.jsonl"
            )
            state = provider.create_job(
                uploaded.id, job.base_model, job.parameters, suffix=job.tenant_id[:18]
            )
        except DomainError as error:
            return self._submission_failed(job, tries, error)
        job.provider_job_id = state.provider_job_id
        job.error = None
        events = follow_provider(job, state, at=self._clock())
        with tenant_scope(job.tenant_id), unit_of_work(self._database) as uow:
            uow.fine_tuning_jobs.save_transitions(job, events)
        logger.info(
            "tenant %s: fine-tuning job %s submitted as %s",
            job.tenant_id,
            job.id,
            state.provider_job_id,
        )
        return job

    def _submission_failed(
        self, job: FineTuningJob, tries: int, error: DomainError
    ) -> FineTuningJob:
        detail = {
            "submit_attempts": tries,
            "code": getattr(error, "code", type(error).__name__),
            "message": str(error),
        }
        job.error = detail
        with tenant_scope(job.tenant_id), unit_of_work(self._database) as uow:
            if tries >= self._submit_attempts:
                event = job.transition_to(
                    FineTuningStatus.FAILED,
                    f"not submitted after {tries} attempts: {error}",
                    at=self._clock(),
                )
                uow.fine_tuning_jobs.save_transition(job, event)
            else:
                uow.fine_tuning_jobs.save(job)
        logger.warning(
            "tenant %s: fine-tuning job %s not submitted (attempt %d): %s",
            job.tenant_id,
            job.id,
            tries,
            error,
        )
        return job

    def _retry(
        self, job: FineTuningJob, dataset: StoredDataset, provider: TrainingProvider
    ) -> FineTuningJob:
        with tenant_scope(job.tenant_id), unit_of_work(self._database) as uow:
            retried = job.transition_to(FineTuningStatus.PENDING, "retry", at=self._clock())
            job.provider_job_id = None
            job.fine_tuned_model = None
            uow.fine_tuning_jobs.save_transition(job, retried)
            queued = job.transition_to(FineTuningStatus.QUEUED, "queued for the provider")
            uow.fine_tuning_jobs.save_transition(job, queued)
        return self._hand_over(job, dataset, provider)


def _dataset_version(job: FineTuningJob) -> str:
    return (job.dataset_uri or "").removeprefix(DATASET_URI_PREFIX)
