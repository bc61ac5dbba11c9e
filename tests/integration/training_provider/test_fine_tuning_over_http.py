"""The provider adapter against the real stand-in over HTTP: a job trains, our job follows it,
and the tuned model answers what it learned better than the base model (measured on held-out
wordings); malformed data fails the job with the provider's code and message; cancelling works
for a running job and is refused by us for a finished one."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from domain.errors import NotAllowedInStatus
from domain.fine_tuning import FineTuningJob, FineTuningStatus, TrainingParameters
from domain.provider_job import ProviderJobStatus, follow_provider
from resources.training_provider.client import TrainingProviderClient, final_training_metrics
from standins.finetune_provider.server import FineTuneProviderServer
from tests.integration.training_provider.conftest import (
    HELD_OUT,
    TENANT_A_KEY,
    TRAINING,
    adapter,
    chat_jsonl,
    poll_until_final,
)

BASE = "base-coder"


def submit(client: TrainingProviderClient, content: bytes, suffix: str = "acme") -> FineTuningJob:
    job = FineTuningJob(
        tenant_id="acme", base_model=BASE, parameters=TrainingParameters(epochs=3, batch_size=2)
    )
    uploaded = client.upload_training_file(content, "acme-train.jsonl")
    state = client.create_job(uploaded.id, job.base_model, job.parameters, suffix=suffix, seed=7)
    job.provider_job_id = state.provider_job_id
    job.dataset_uri = uploaded.id
    follow_provider(job, state)
    return job


def accuracy(client: TrainingProviderClient, model: str) -> float:
    right = sum(client.chat(model, question).text == expected for question, expected in HELD_OUT)
    return right / len(HELD_OUT)


def test_a_tuned_model_answers_held_out_questions_better_than_its_base(
    tenant_a: TrainingProviderClient,
) -> None:
    job = submit(tenant_a, chat_jsonl(TRAINING))
    assert job.status is FineTuningStatus.QUEUED
    seen = poll_until_final(tenant_a, job.provider_job_id or "")
    for state in seen:
        follow_provider(job, state)
    assert [s.status for s in seen][-1] is ProviderJobStatus.SUCCEEDED
    assert ProviderJobStatus.RUNNING in [s.status for s in seen]
    assert job.status is FineTuningStatus.COMPLETED
    assert job.fine_tuned_model is not None
    assert job.fine_tuned_model.startswith(f"ft:{BASE}:acme:")
    assert job.metrics.trained_tokens and job.metrics.trained_tokens > 0
    tuned, base = accuracy(tenant_a, job.fine_tuned_model), accuracy(tenant_a, BASE)
    assert tuned >= 0.8
    assert base <= 0.2
    assert tuned > base


def test_job_events_carry_a_training_loss_per_step_that_falls(
    tenant_a: TrainingProviderClient,
) -> None:
    job = submit(tenant_a, chat_jsonl(TRAINING))
    poll_until_final(tenant_a, job.provider_job_id or "")
    events = tenant_a.job_events(job.provider_job_id or "")
    assert [e.created_at for e in events] == sorted(e.created_at for e in events)
    metrics = [e.data for e in events if e.type == "metrics" and e.data]
    assert [m["step"] for m in metrics] == list(range(1, 10))  # 3 epochs x 3 batches of 2
    assert metrics[-1]["train_loss"] < metrics[0]["train_loss"]
    final = final_training_metrics(events)
    assert final == {
        "loss": metrics[-1]["train_loss"],
        "accuracy": metrics[-1]["train_mean_token_accuracy"],
    }
    job.metrics = job.metrics.model_copy(update=final)
    assert job.metrics.loss is not None
    assert job.metrics.loss < 0.1
    messages = [e.message for e in events]
    assert messages[-1] == "The job has successfully completed"


def test_a_malformed_training_file_fails_the_job_with_the_providers_code_and_message(
    tenant_a: TrainingProviderClient,
) -> None:
    content = chat_jsonl(TRAINING[:2]) + b"this line is not JSON\n"
    job = submit(tenant_a, content)
    final = poll_until_final(tenant_a, job.provider_job_id or "")[-1]
    follow_provider(job, final)
    assert final.status is ProviderJobStatus.FAILED
    assert job.status is FineTuningStatus.FAILED
    assert job.error is not None
    assert job.error["code"] == "invalid_training_file"
    assert "line 3" in job.error["message"]
    assert job.fine_tuned_model is None


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b'{"prompt": "q", "completion": "a"}\n', "no 'messages'"),
        (b'{"messages": [{"role": "user", "content": "q"}]}\n', "no assistant"),
    ],
)
def test_training_data_without_chat_turns_fails_the_job(
    tenant_a: TrainingProviderClient, content: bytes, says: str
) -> None:
    job = submit(tenant_a, content)
    final = poll_until_final(tenant_a, job.provider_job_id or "")[-1]
    assert final.status is ProviderJobStatus.FAILED
    assert final.error is not None
    assert final.error.code == "invalid_training_file"
    assert says in final.error.message


def test_a_running_job_can_be_cancelled(tmp_path: Path) -> None:
    with FineTuneProviderServer(tmp_path / "slow", step_seconds=1.5) as server:
        client = adapter(server.api_url, TENANT_A_KEY)
        job = submit(client, chat_jsonl(TRAINING))
        deadline = time.monotonic() + 10
        while job.status is not FineTuningStatus.RUNNING and time.monotonic() < deadline:
            follow_provider(job, client.retrieve_job(job.provider_job_id or ""))
            time.sleep(0.05)
        assert job.status is FineTuningStatus.RUNNING
        state = client.cancel_job(job)
        follow_provider(job, state)
        assert state.status is ProviderJobStatus.CANCELLED
        assert job.status is FineTuningStatus.CANCELLED
        time.sleep(1.6)  # past when it would have succeeded
        later = client.retrieve_job(job.provider_job_id or "")
        assert later.status is ProviderJobStatus.CANCELLED
        assert later.fine_tuned_model is None


def test_cancelling_a_finished_job_is_refused_by_us_before_the_provider_is_asked(
    provider_server: FineTuneProviderServer, tenant_a: TrainingProviderClient
) -> None:
    job = submit(tenant_a, chat_jsonl(TRAINING))
    follow_provider(job, poll_until_final(tenant_a, job.provider_job_id or "")[-1])
    assert job.status is FineTuningStatus.COMPLETED
    asked = len(provider_server.requests())
    with pytest.raises(NotAllowedInStatus) as refused:
        tenant_a.cancel_job(job)
    assert "COMPLETED" in str(refused.value)
    assert len(provider_server.requests()) == asked
    assert tenant_a.retrieve_job(job.provider_job_id or "").status is ProviderJobStatus.SUCCEEDED


def test_jobs_and_tuned_models_survive_a_restart_of_the_provider(tmp_path: Path) -> None:
    data = tmp_path / "provider"
    with FineTuneProviderServer(data, step_seconds=0.1) as server:
        client = adapter(server.api_url, TENANT_A_KEY)
        job = submit(client, chat_jsonl(TRAINING))
        final = poll_until_final(client, job.provider_job_id or "")[-1]
    with FineTuneProviderServer(data, step_seconds=0.1) as restarted:
        client = adapter(restarted.api_url, TENANT_A_KEY)
        again = client.retrieve_job(job.provider_job_id or "")
        assert again.status is ProviderJobStatus.SUCCEEDED
        assert again.fine_tuned_model == final.fine_tuned_model
        question, expected = HELD_OUT[0]
        assert client.chat(final.fine_tuned_model or "", question).text == expected


def test_a_large_training_file_keeps_its_job_running_while_requests_answer_at_once(
    tmp_path: Path,
) -> None:
    # 10,000 examples sharing common words: training takes seconds, not one clock step.
    pairs = [
        (f"fix the failing test in module {n} of service {n % 97}", f"patched module {n}")
        for n in range(10_000)
    ]
    with FineTuneProviderServer(tmp_path / "big", step_seconds=0.05) as server:
        client = adapter(server.api_url, TENANT_A_KEY)
        job = submit(client, chat_jsonl(pairs))
        running_polls = 0
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            state = client.retrieve_job(job.provider_job_id or "")
            running_polls += state.status is ProviderJobStatus.RUNNING
            if state.status is ProviderJobStatus.SUCCEEDED:
                break
            time.sleep(0.05)
        assert state.status is ProviderJobStatus.SUCCEEDED
        # Answered again and again while it trained (a server blocked by training would answer
        # once it ended); no bound on a request's time: speed is the bench's, not a test's.
        assert running_polls >= 5
        metrics = [e for e in client.job_events(job.provider_job_id or "") if e.type == "metrics"]
        assert len(metrics) == 100
        assert metrics[-1].data and metrics[-1].data["step"] == metrics[-1].data["total_steps"]
