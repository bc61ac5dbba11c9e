"""The adapter's answers to a provider that refuses, limits or is down: rate limits and outages
are retried with backoff (seen on the real stand-in's request log), then end in typed errors
that carry the provider's code and message and never the API key; two tenants' files, jobs and
models never mix."""

from __future__ import annotations

import time

import pytest

from domain.errors import InvalidSetting
from domain.fine_tuning import TrainingParameters
from resources.training_provider.client import TrainingProviderClient
from resources.training_provider.errors import (
    ProviderRateLimited,
    ProviderRejected,
    ProviderUnavailable,
)
from standins.finetune_provider.server import FineTuneProviderServer
from standins.opencode_server import free_port
from tests.integration.training_provider.conftest import (
    TENANT_A_KEY,
    TRAINING,
    adapter,
    chat_jsonl,
    poll_until_final,
)

FILES = "/v1/files"


def statuses(server: FineTuneProviderServer, path: str) -> list[object]:
    return [r["status"] for r in server.requests() if r["path"] == path]


def test_rate_limited_requests_are_retried_until_they_succeed(
    provider_server: FineTuneProviderServer, tenant_a: TrainingProviderClient
) -> None:
    provider_server.inject_faults(429, times=2, retry_after_ms=300)
    started = time.monotonic()
    uploaded = tenant_a.upload_training_file(chat_jsonl(TRAINING), "train.jsonl")
    assert time.monotonic() - started >= 0.6  # waited as the provider asked, twice
    assert uploaded.id.startswith("file-")
    assert statuses(provider_server, FILES) == [429, 429, 200]


def test_server_errors_are_retried_until_they_succeed(
    provider_server: FineTuneProviderServer, tenant_a: TrainingProviderClient
) -> None:
    provider_server.inject_faults(503, times=1)  # no Retry-After: the client's own backoff
    started = time.monotonic()
    answer = tenant_a.chat("base-coder", "How do I create a git branch?")
    assert time.monotonic() - started >= 0.35  # 0.5 s less at most 25 % jitter
    assert "git switch" in answer.text
    assert statuses(provider_server, "/v1/chat/completions") == [503, 200]


def test_a_lasting_outage_ends_in_provider_unavailable_after_every_retry(
    provider_server: FineTuneProviderServer,
) -> None:
    client = adapter(provider_server.api_url, TENANT_A_KEY, max_retries=2)
    provider_server.inject_faults(503, times=5, retry_after_ms=10)
    with pytest.raises(ProviderUnavailable) as failed:
        client.upload_training_file(b"{}", "train.jsonl")
    assert statuses(provider_server, FILES) == [503, 503, 503]
    assert failed.value.status_code == 503
    assert "injected fault" in failed.value.message


def test_a_lasting_rate_limit_ends_in_provider_rate_limited(
    provider_server: FineTuneProviderServer,
) -> None:
    client = adapter(provider_server.api_url, TENANT_A_KEY, max_retries=1)
    provider_server.inject_faults(429, times=3, retry_after_ms=10)
    with pytest.raises(ProviderRateLimited) as limited:
        client.retrieve_job("ftjob-anything")
    assert limited.value.code == "rate_limit_exceeded"
    assert len(provider_server.requests()) == 2


def test_a_provider_that_is_down_is_provider_unavailable() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    client = adapter(url, TENANT_A_KEY, max_retries=1)
    started = time.monotonic()
    with pytest.raises(ProviderUnavailable) as failed:
        client.retrieve_job("ftjob-1")
    assert time.monotonic() - started >= 0.35  # one retry after a backoff
    assert failed.value.code == "connection_error"
    assert url.removesuffix("/v1") in str(failed.value)
    assert TENANT_A_KEY not in str(failed.value)


def test_a_refusal_keeps_the_providers_code_and_message(
    tenant_a: TrainingProviderClient,
) -> None:
    uploaded = tenant_a.upload_training_file(chat_jsonl(TRAINING), "train.jsonl")
    with pytest.raises(ProviderRejected) as refused:
        tenant_a.create_job(uploaded.id, "no-such-base", TrainingParameters())
    assert refused.value.code == "model_not_available"
    assert refused.value.status_code == 400
    assert "no-such-base" in refused.value.message
    assert TENANT_A_KEY not in str(refused.value)
    assert TENANT_A_KEY not in repr(refused.value.__dict__)


def test_without_an_api_key_the_adapter_names_the_setting(
    provider_server: FineTuneProviderServer,
) -> None:
    with pytest.raises(InvalidSetting) as refused:
        adapter(provider_server.api_url, None)
    assert refused.value.setting == "INDORCH_PROVIDER_API_KEY"


def test_two_tenants_files_jobs_and_models_never_mix(
    tenant_a: TrainingProviderClient, tenant_b: TrainingProviderClient
) -> None:
    uploaded = tenant_a.upload_training_file(chat_jsonl(TRAINING), "a.jsonl")
    state = tenant_a.create_job(uploaded.id, "base-coder", TrainingParameters(), suffix="tenant-a")
    model = poll_until_final(tenant_a, state.provider_job_id)[-1].fine_tuned_model
    assert model is not None

    with pytest.raises(ProviderRejected) as no_job:
        tenant_b.retrieve_job(state.provider_job_id)
    assert no_job.value.status_code == 404
    with pytest.raises(ProviderRejected) as no_file:
        tenant_b.create_job(uploaded.id, "base-coder", TrainingParameters(), suffix="tenant-b")
    assert no_file.value.code == "invalid_training_file"
    with pytest.raises(ProviderRejected) as no_model:
        tenant_b.chat(model, "Which port does the ledger API listen on?")
    assert no_model.value.code == "model_not_found"
    assert model not in tenant_b.model_ids()
    assert model in tenant_a.model_ids()


def test_hyperparameters_out_of_range_are_refused_by_the_provider(
    tenant_a: TrainingProviderClient,
) -> None:
    uploaded = tenant_a.upload_training_file(chat_jsonl(TRAINING), "train.jsonl")
    with pytest.raises(ProviderRejected) as refused:
        tenant_a.create_job(uploaded.id, "base-coder", TrainingParameters(batch_size=1000))
    assert refused.value.code == "invalid_hyperparameters"
    assert "batch_size" in refused.value.message
