"""A real OpenCode server, its provider pointed at the stand-in fine-tuning provider, prompts a
tuned model: the agent's answer is what the model was trained on (the stand-in's inference
endpoint speaks OpenCode's streaming chat-completions dialect)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from domain.fine_tuning import TrainingParameters
from resources.training_provider.resource import TrainingProviderResource
from standins.finetune_provider.server import FineTuneProviderServer
from standins.opencode_config import provider_config_json
from standins.opencode_server import OpenCodeServer
from tests.integration.training_provider.conftest import (
    HELD_OUT,
    TENANT_A_KEY,
    TRAINING,
    chat_jsonl,
    poll_until_final,
)

ANSWER_TIMEOUT_SECONDS = 90.0


def assistant_texts(client: httpx.Client, session_id: str) -> list[str]:
    """The completed assistant messages' text, once every one is completed."""
    deadline = time.monotonic() + ANSWER_TIMEOUT_SECONDS
    while True:
        found: list[dict[str, Any]] = client.get(f"/session/{session_id}/message").json()
        assistants = [m for m in found if m["info"]["role"] == "assistant"]
        if assistants and all(m["info"]["time"].get("completed") for m in assistants):
            return [
                "".join(p.get("text", "") for p in m["parts"] if p["type"] == "text")
                for m in assistants
            ]
        assert time.monotonic() < deadline, f"no completed answer: {found}"
        time.sleep(0.2)


def test_opencode_prompts_the_tuned_model_and_gets_what_it_learned(
    tmp_path: Path, opencode_binary: Path, opencode_home: Path
) -> None:
    with FineTuneProviderServer(tmp_path / "provider", step_seconds=0.05) as provider:
        with TrainingProviderResource(
            base_url=provider.api_url, api_key=TENANT_A_KEY
        ).client() as client:
            uploaded = client.upload_training_file(chat_jsonl(TRAINING), "acme.jsonl")
            job = client.create_job(uploaded.id, "base-coder", TrainingParameters(), suffix="acme")
            tuned = poll_until_final(client, job.provider_job_id)[-1].fine_tuned_model
        assert tuned is not None
        config = provider_config_json(
            provider.url, provider_id="finetune", model_id=tuned, api_key=TENANT_A_KEY
        )
        with (
            OpenCodeServer(
                provider.url, home=opencode_home, binary=opencode_binary, config_json=config
            ) as server,
            httpx.Client(base_url=server.url, timeout=30) as opencode,
        ):
            session = opencode.post("/session", json={}).json()
            question, expected = HELD_OUT[1]
            sent = opencode.post(
                f"/session/{session['id']}/prompt_async",
                json={"parts": [{"type": "text", "text": question}]},
            )
            assert sent.status_code == 204, sent.text
            assert assistant_texts(opencode, session["id"])[-1] == expected
            chats = [r for r in provider.requests() if r["path"] == "/v1/chat/completions"]
            assert chats
            assert all(r["status"] == 200 for r in chats)
