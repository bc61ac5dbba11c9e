"""Our fine-tuning job follows the provider's job: each provider status brings it, through the
states our machine allows, to the matching state, carrying the tuned model, tokens and errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.errors import InvalidTransition, NotAllowedInStatus
from domain.fine_tuning import FineTuningJob, FineTuningStatus
from domain.provider_job import (
    ProviderJobError,
    ProviderJobState,
    ProviderJobStatus,
    cancellable_statuses,
    ensure_cancellable,
    follow_provider,
    status_for,
)

AT = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
_F = FineTuningStatus
_P = ProviderJobStatus


def job_in(status: FineTuningStatus) -> FineTuningJob:
    return FineTuningJob(
        tenant_id="acme", base_model="base-coder", status=status, provider_job_id="ftjob-1"
    )


def provider(status: ProviderJobStatus, **fields: object) -> ProviderJobState:
    return ProviderJobState(
        provider_job_id="ftjob-1", status=status, base_model="base-coder", created_at=AT, **fields
    )


@pytest.mark.parametrize(
    ("provider_status", "ours"),
    [
        (_P.VALIDATING_FILES, _F.QUEUED),
        (_P.QUEUED, _F.QUEUED),
        (_P.RUNNING, _F.RUNNING),
        (_P.SUCCEEDED, _F.COMPLETED),
        (_P.FAILED, _F.FAILED),
        (_P.CANCELLED, _F.CANCELLED),
    ],
)
def test_every_provider_status_has_one_state_of_ours(
    provider_status: ProviderJobStatus, ours: FineTuningStatus
) -> None:
    assert status_for(provider_status) is ours


def test_provider_statuses_are_the_openai_wire_names() -> None:
    assert {status.value for status in ProviderJobStatus} == {
        "validating_files",
        "queued",
        "running",
        "succeeded",
        "failed",
        "cancelled",
    }


def test_a_submitted_job_seen_succeeded_walks_queued_running_completed() -> None:
    job = job_in(_F.PENDING)
    state = provider(
        _P.SUCCEEDED,
        fine_tuned_model="ft:base-coder:acme:abc123",
        trained_tokens=1234,
        finished_at=AT + timedelta(seconds=90),
    )
    events = follow_provider(job, state, at=AT)
    assert [(e.old_status, e.new_status) for e in events] == [
        ("PENDING", "QUEUED"),
        ("QUEUED", "RUNNING"),
        ("RUNNING", "COMPLETED"),
    ]
    assert job.status is _F.COMPLETED
    assert job.fine_tuned_model == "ft:base-coder:acme:abc123"
    assert job.metrics.trained_tokens == 1234
    assert job.metrics.duration_seconds == 90
    assert job.error is None


def test_the_same_provider_status_again_records_nothing() -> None:
    job = job_in(_F.RUNNING)
    assert follow_provider(job, provider(_P.RUNNING), at=AT) == []
    assert job.status is _F.RUNNING


def test_a_failed_provider_job_keeps_its_code_and_message_on_our_job() -> None:
    job = job_in(_F.QUEUED)
    error = ProviderJobError(
        code="invalid_training_file", message="line 2 is not JSON", param="training_file"
    )
    events = follow_provider(job, provider(_P.FAILED, error=error), at=AT)
    assert [e.new_status for e in events] == ["FAILED"]
    assert job.error == {
        "code": "invalid_training_file",
        "message": "line 2 is not JSON",
        "param": "training_file",
    }
    assert "invalid_training_file" in job.status_reason
    assert "line 2 is not JSON" in job.status_reason


def test_a_provider_going_backwards_is_refused_and_leaves_the_job_as_it_was() -> None:
    job = job_in(_F.COMPLETED)
    with pytest.raises(InvalidTransition):
        follow_provider(job, provider(_P.RUNNING), at=AT)
    assert job.status is _F.COMPLETED


def test_a_failed_job_is_not_revived_by_the_provider_a_retry_is_ours_to_decide() -> None:
    job = job_in(_F.FAILED)
    with pytest.raises(InvalidTransition):
        follow_provider(job, provider(_P.QUEUED), at=AT)
    assert job.status is _F.FAILED
    assert job.retry_count == 0


def test_another_provider_job_is_not_followed() -> None:
    job = job_in(_F.QUEUED)
    other = ProviderJobState(
        provider_job_id="ftjob-2", status=_P.RUNNING, base_model="base-coder", created_at=AT
    )
    with pytest.raises(ValueError, match="ftjob-2"):
        follow_provider(job, other, at=AT)
    assert job.status is _F.QUEUED


def test_only_jobs_that_can_still_move_to_cancelled_are_cancellable() -> None:
    assert cancellable_statuses() == [_F.PENDING, _F.QUEUED, _F.RUNNING]
    ensure_cancellable(job_in(_F.RUNNING))


@pytest.mark.parametrize("status", [_F.COMPLETED, _F.FAILED, _F.CANCELLED, _F.EVALUATING])
def test_cancelling_a_finished_job_is_refused_with_a_typed_error(
    status: FineTuningStatus,
) -> None:
    job = job_in(status)
    with pytest.raises(NotAllowedInStatus) as refused:
        ensure_cancellable(job)
    assert refused.value.current == status.value
    assert "PENDING, QUEUED or RUNNING" in str(refused.value)


def test_a_job_not_yet_linked_takes_the_provider_job_id_it_follows() -> None:
    job = FineTuningJob(tenant_id="acme", base_model="base-coder")
    follow_provider(job, provider(_P.VALIDATING_FILES), at=AT)
    assert job.provider_job_id == "ftjob-1"
    assert job.status is _F.QUEUED
