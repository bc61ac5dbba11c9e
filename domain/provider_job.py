"""The provider's view of a fine-tuning job, and how our job follows it.

The provider (OpenAI-compatible fine-tuning API) reports one of six statuses; our
`FineTuningJob` has its own machine. `follow_provider` brings our job to the provider's status
through the states our machine allows (a job first seen `succeeded` still passes QUEUED and
RUNNING, so its history reads as it happened), and never revives a finished job: a retry
(FAILED → PENDING) is our decision, not the provider's.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum

from pydantic import Field

from domain.clock import utcnow
from domain.domain_model import ValueObject
from domain.errors import InvalidTransition, NotAllowedInStatus
from domain.events import StatusChanged
from domain.fine_tuning import FINE_TUNING_MACHINE, FineTuningJob, FineTuningStatus


class ProviderJobStatus(StrEnum):
    """The provider's job statuses, as the OpenAI fine-tuning API spells them."""

    VALIDATING_FILES = "validating_files"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


_P = ProviderJobStatus
_F = FineTuningStatus
OUR_STATUS: Mapping[ProviderJobStatus, FineTuningStatus] = {
    _P.VALIDATING_FILES: _F.QUEUED,
    _P.QUEUED: _F.QUEUED,
    _P.RUNNING: _F.RUNNING,
    _P.SUCCEEDED: _F.COMPLETED,
    _P.FAILED: _F.FAILED,
    _P.CANCELLED: _F.CANCELLED,
}


class ProviderJobError(ValueObject):
    """Why the provider failed a job (e.g. ``invalid_training_file``), in its own words."""

    code: str
    message: str
    param: str | None = None


class ProviderJobState(ValueObject):
    """One observation of the provider's job (a `retrieve`)."""

    provider_job_id: str
    status: ProviderJobStatus
    base_model: str
    fine_tuned_model: str | None = None
    trained_tokens: int | None = Field(default=None, ge=0)
    error: ProviderJobError | None = None
    created_at: datetime
    finished_at: datetime | None = None


def status_for(provider_status: ProviderJobStatus) -> FineTuningStatus:
    return OUR_STATUS[provider_status]


def moves_to(current: FineTuningStatus, target: FineTuningStatus) -> list[FineTuningStatus]:
    """The shortest walk from `current` to `target` on our machine, never through PENDING (a
    retry is ours to decide); `InvalidTransition` when there is none."""
    if current is target:
        return []
    previous: dict[FineTuningStatus, FineTuningStatus] = {}
    queue = deque([current])
    while queue:
        state = queue.popleft()
        for following in sorted(FINE_TUNING_MACHINE.transitions[state]):
            if following is _F.PENDING or following in previous or following is current:
                continue
            previous[following] = state
            if following is target:
                path = [target]
                while path[-1] in previous and previous[path[-1]] is not current:
                    path.append(previous[path[-1]])
                return list(reversed(path))
            queue.append(following)
    raise InvalidTransition(FINE_TUNING_MACHINE.name, current.value, target.value)


def _reason(state: ProviderJobState) -> str:
    if state.error is not None:
        return f"provider: {state.status.value}: {state.error.code}: {state.error.message}"
    return f"provider: {state.status.value}"


def follow_provider(
    job: FineTuningJob, state: ProviderJobState, at: datetime | None = None
) -> list[StatusChanged]:
    """Move `job` to the provider's status and copy what the provider learned (tuned model,
    trained tokens, duration, error); returns the events to record, one per move."""
    if job.provider_job_id is not None and state.provider_job_id != job.provider_job_id:
        raise ValueError(
            f"job {job.id} follows provider job {job.provider_job_id}, not {state.provider_job_id}"
        )
    path = moves_to(job.status, status_for(state.status))
    job.provider_job_id = state.provider_job_id
    moment = at or utcnow()
    events = [job.transition_to(target, _reason(state), at=moment) for target in path]
    if state.fine_tuned_model:
        job.fine_tuned_model = state.fine_tuned_model
    updates: dict[str, float | int] = {}
    if state.trained_tokens is not None:
        updates["trained_tokens"] = state.trained_tokens
    if state.finished_at is not None:
        updates["duration_seconds"] = (state.finished_at - state.created_at).total_seconds()
    if updates:
        job.metrics = job.metrics.model_copy(update=updates)
    if state.error is not None:
        job.error = state.error.model_dump()
    return events


def cancellable_statuses() -> list[FineTuningStatus]:
    """The statuses from which our machine allows CANCELLED, in the enum's order."""
    return [
        status
        for status in FineTuningStatus
        if FINE_TUNING_MACHINE.allows(status, FineTuningStatus.CANCELLED)
    ]


def ensure_cancellable(job: FineTuningJob) -> None:
    """`NotAllowedInStatus` unless the job may still be cancelled (checked before the provider
    is asked, so a finished job is refused by us, whatever the provider would say)."""
    if not FINE_TUNING_MACHINE.allows(job.status, FineTuningStatus.CANCELLED):
        raise NotAllowedInStatus(
            "fine-tuning job",
            job.id,
            job.status.value,
            "cancelled",
            [status.value for status in cancellable_statuses()],
            FineTuningStatus.CANCELLED.value,
        )
