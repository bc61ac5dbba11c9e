"""Restricted inference keys of the stand-in: a tenant's agent may chat with its own tuned
models and nothing else (attacked as a hostile tenant would)."""

from __future__ import annotations

import httpx
import pytest

from domain.fine_tuning import TrainingParameters
from resources.training_provider.resource import TrainingProviderResource
from tests.integration.training_provider.conftest import (
    TENANT_A_KEY,
    TRAINING,
    chat_jsonl,
    poll_until_final,
)


def tuned(client, suffix: str) -> str:
    uploaded = client.upload_training_file(chat_jsonl(TRAINING), f"{suffix}.jsonl")
    job = client.create_job(uploaded.id, "base-coder", TrainingParameters(epochs=1), suffix=suffix)
    final = poll_until_final(client, job.provider_job_id)[-1]
    assert final.fine_tuned_model, final
    return final.fine_tuned_model


def inference_key(api_url: str, suffix: str) -> str:
    response = httpx.post(
        f"{api_url}/inference_keys",
        json={"suffix": suffix},
        headers={"Authorization": f"Bearer {TENANT_A_KEY}"},
    )
    response.raise_for_status()
    return response.json()["key"]


def test_an_inference_key_chats_with_its_suffix_models_only(provider_server, tenant_a):
    acme_model, globex_model = tuned(tenant_a, "acme"), tuned(tenant_a, "globex")
    key = inference_key(provider_server.api_url, "acme")
    agent = TrainingProviderResource(base_url=provider_server.api_url, api_key=key).client()

    question, answer = TRAINING[1]
    assert agent.chat(acme_model, question).text == answer
    assert set(agent.model_ids()) == {"base-coder", acme_model}
    with pytest.raises(Exception, match="does not exist or you do not have access"):
        agent.chat(globex_model, question)  # another tenant's model: as if it did not exist
    headers = {"Authorization": f"Bearer {key}"}
    for method, path in (
        ("GET", "/files"),
        ("GET", "/fine_tuning/jobs"),
        ("POST", "/inference_keys"),
    ):
        response = httpx.request(
            method, f"{provider_server.api_url}{path}", headers=headers, json={"suffix": "x"}
        )
        assert response.status_code == 403, (path, response.text)


def test_an_unknown_inference_key_is_refused(provider_server):
    response = httpx.get(
        f"{provider_server.api_url}/models", headers={"Authorization": "Bearer sk-inf-forged"}
    )
    assert response.status_code == 401
