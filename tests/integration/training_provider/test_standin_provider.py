"""The stand-in provider speaks the OpenAI wire format to the official client: a command starts
it, keys keep callers apart, events page like OpenAI's, chat streams, and the provider itself
refuses to cancel a finished job."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from standins.finetune_provider.server import FineTuneProviderServer
from standins.finetune_provider.store import DATABASE_FILE
from standins.opencode_server import free_port
from tests.integration.training_provider.conftest import TENANT_A_KEY, TRAINING, chat_jsonl

PROJECT_ROOT = Path(__file__).resolve().parents[3]


def trained_job(client: openai.OpenAI, epochs: int = 3) -> str:
    uploaded = client.files.create(file=("t.jsonl", chat_jsonl(TRAINING)), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(
        model="base-coder",
        training_file=uploaded.id,
        suffix="acme",
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": epochs}}},
    )
    deadline = time.monotonic() + 20
    while client.fine_tuning.jobs.retrieve(job.id).status != "succeeded":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return job.id


@pytest.fixture
def client(provider_server: FineTuneProviderServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=provider_server.api_url, api_key=TENANT_A_KEY, max_retries=0)


def test_the_command_starts_a_provider_keeping_jobs_in_its_sqlite_file(tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "standins.finetune_provider", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--data", str(tmp_path), "--step-seconds", "0.05"],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        api = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="k", max_retries=0)
        deadline = time.monotonic() + 30
        while True:
            try:
                models = [model.id for model in api.models.list()]
                break
            except openai.APIConnectionError:
                assert time.monotonic() < deadline, "the stand-in did not start"
                time.sleep(0.2)
        assert models == ["base-coder"]
        job_id = trained_job(api)
        assert (tmp_path / DATABASE_FILE).is_file()
        assert api.fine_tuning.jobs.retrieve(job_id).fine_tuned_model in [
            model.id for model in api.models.list()
        ]
    finally:
        process.terminate()
        process.wait(10)


def test_a_request_without_a_key_is_refused(provider_server: FineTuneProviderServer) -> None:
    answer = httpx.get(f"{provider_server.api_url}/fine_tuning/jobs")
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "invalid_api_key"


def test_the_provider_refuses_to_cancel_a_succeeded_job(client: openai.OpenAI) -> None:
    job_id = trained_job(client)
    with pytest.raises(openai.BadRequestError) as refused:
        client.fine_tuning.jobs.cancel(job_id)
    assert refused.value.code == "job_not_cancellable"


def test_events_page_newest_first_and_the_client_walks_every_page(client: openai.OpenAI) -> None:
    job_id = trained_job(client, epochs=4)  # 4 epochs x 2 batches (of 4, the default) + 5 messages
    first = client.fine_tuning.jobs.list_events(job_id, limit=5)
    assert len(first.data) == 5
    assert first.has_more
    assert first.data[0].message == "The job has successfully completed"
    every = list(client.fine_tuning.jobs.list_events(job_id, limit=5))
    assert len(every) == 13
    assert len({event.id for event in every}) == 13
    assert every[-1].message.startswith("Validating training file")


def test_chat_streams_like_openai(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="base-coder",
        messages=[{"role": "user", "content": "How do I create a git branch?"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Run `git switch -c <name>`."
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0


def test_a_fine_tuned_model_is_named_after_its_base_suffix_and_job(client: openai.OpenAI) -> None:
    job_id = trained_job(client)
    name = client.fine_tuning.jobs.retrieve(job_id).fine_tuned_model
    assert name == f"ft:base-coder:acme:{job_id.removeprefix('ftjob-')[:8]}"
