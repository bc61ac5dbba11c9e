"""Fine-tuning jobs of the current tenant, with version-checked transitions like sessions."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from domain.errors import ConcurrentModification, NotFound
from domain.events import StatusChanged
from domain.fine_tuning import (
    FineTuningJob,
    FineTuningStatus,
    TrainingMetrics,
    TrainingParameters,
)
from resources.database.repositories.base import TenantScopedRepository
from resources.database.repositories.status_events import record_status_event, status_history
from resources.database.repositories.webhooks import enqueue_deliveries
from resources.database.schema import FineTuningJobRow


def _to_domain(row: FineTuningJobRow) -> FineTuningJob:
    return FineTuningJob(
        id=row.id,
        tenant_id=row.tenant_id,
        base_model=row.base_model,
        dataset_uri=row.dataset_uri,
        parameters=TrainingParameters.model_validate(row.parameters),
        metrics=TrainingMetrics.model_validate(row.metrics),
        provider_job_id=row.provider_job_id,
        fine_tuned_model=row.fine_tuned_model,
        model_version=row.model_version,
        status=FineTuningStatus(row.status),
        status_reason=row.status_reason,
        retry_count=row.retry_count,
        error=row.error,
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _mutable_columns(job: FineTuningJob) -> dict[str, Any]:
    return {
        "dataset_uri": job.dataset_uri,
        "metrics": job.metrics.model_dump(mode="json"),
        "provider_job_id": job.provider_job_id,
        "fine_tuned_model": job.fine_tuned_model,
        "model_version": job.model_version,
        "status": job.status.value,
        "status_reason": job.status_reason,
        "retry_count": job.retry_count,
        "error": job.error,
        "updated_at": job.updated_at,
    }


class FineTuningJobRepository(TenantScopedRepository):
    kind = "fine-tuning job"

    def add(self, job: FineTuningJob) -> FineTuningJob:
        tenant = self._owned(job.tenant_id)
        self._session.add(
            FineTuningJobRow(
                id=job.id,
                tenant_id=tenant,
                base_model=job.base_model,
                parameters=job.parameters.model_dump(mode="json"),
                version=job.version,
                created_at=job.created_at,
                **_mutable_columns(job),
            )
        )
        self._session.flush()
        return job

    def get(self, job_id: str) -> FineTuningJob:
        row = self._session.scalars(
            select(FineTuningJobRow).where(
                FineTuningJobRow.tenant_id == self.tenant_id, FineTuningJobRow.id == job_id
            )
        ).first()
        if row is None:
            raise NotFound(self.kind, job_id)
        return _to_domain(row)

    def list(self, statuses: set[FineTuningStatus] | None = None) -> list[FineTuningJob]:
        query = select(FineTuningJobRow).where(FineTuningJobRow.tenant_id == self.tenant_id)
        if statuses:
            query = query.where(FineTuningJobRow.status.in_([s.value for s in statuses]))
        return [
            _to_domain(row) for row in self._session.scalars(query.order_by(FineTuningJobRow.id))
        ]

    def save_transition(self, job: FineTuningJob, event: StatusChanged) -> None:
        self._conditional_update(job, event.old_status)
        record_status_event(self._session, self.tenant_id, event)
        enqueue_deliveries(self._session, self.tenant_id, event)  # webhooks' outbox, same commit

    def save_transitions(self, job: FineTuningJob, events: list[StatusChanged]) -> None:
        """Several moves at once (a provider seen after it moved on): one version-checked
        update from the first move's state, every move in the history."""
        if not events:
            self.save(job)
            return
        self._conditional_update(job, events[0].old_status)
        for event in events:
            record_status_event(self._session, self.tenant_id, event)
            enqueue_deliveries(self._session, self.tenant_id, event)

    def save(self, job: FineTuningJob) -> None:
        """Persist details (provider id, metrics) without a status change, version-checked."""
        self._conditional_update(job, job.status.value)

    def _conditional_update(self, job: FineTuningJob, expected_status: str) -> None:
        expected_version = job.version
        result = self._session.execute(
            update(FineTuningJobRow)
            .where(
                FineTuningJobRow.id == job.id,
                FineTuningJobRow.tenant_id == self.tenant_id,
                FineTuningJobRow.status == expected_status,
                FineTuningJobRow.version == expected_version,
            )
            .values(version=FineTuningJobRow.version + 1, **_mutable_columns(job))
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            self.get(job.id)
            raise ConcurrentModification(self.kind, job.id, expected_status, expected_version)
        job.version = expected_version + 1

    def history(self, job_id: str) -> list[StatusChanged]:
        self.get(job_id)
        return status_history(self._session, self.tenant_id, "fine_tuning_job", job_id)
