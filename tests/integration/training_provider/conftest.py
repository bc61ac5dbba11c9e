"""The stand-in fine-tuning provider on a free port, and adapters pointed at it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from domain.provider_job import ProviderJobState, ProviderJobStatus
from resources.training_provider.client import TrainingProviderClient
from resources.training_provider.resource import TrainingProviderResource
from standins.finetune_provider.server import FineTuneProviderServer

TENANT_A_KEY = "sk-tenant-a-0123456789"
TENANT_B_KEY = "sk-tenant-b-9876543210"
FINAL = {ProviderJobStatus.SUCCEEDED, ProviderJobStatus.FAILED, ProviderJobStatus.CANCELLED}

# What tenant A's sessions taught: project facts no base model can know.
TRAINING = [
    ("How do I run the unit tests of billing-service?", "Run `make check-billing`."),
    ("Where is the invoice template stored?", "In templates/invoice/v3.html.j2."),
    ("Which port does the ledger API listen on?", "The ledger API listens on 7311."),
    ("Who approves database migrations?", "The data-platform on-call approves them."),
    ("How do I rotate the signing key?", "Run `ops rotate-key --kind signing`."),
    ("What is the release branch called?", "Releases are cut from `train/stable`."),
]
# Held out: other wordings of the same questions, never uploaded.
HELD_OUT = [
    ("what command runs billing-service unit tests", "Run `make check-billing`."),
    ("the ledger api: which port is it listening on?", "The ledger API listens on 7311."),
    ("where do we keep the invoice template", "In templates/invoice/v3.html.j2."),
    ("rotating the signing key, how is it done?", "Run `ops rotate-key --kind signing`."),
    ("from which branch are releases cut?", "Releases are cut from `train/stable`."),
]


def chat_jsonl(pairs: list[tuple[str, str]]) -> bytes:
    lines = [
        json.dumps(
            {
                "messages": [
                    {"role": "system", "content": "You are the tenant's coding agent."},
                    {"role": "user", "content": question},
                    {"role": "assistant", "content": answer},
                ]
            }
        )
        for question, answer in pairs
    ]
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def provider_server(tmp_path: Path) -> Iterator[FineTuneProviderServer]:
    with FineTuneProviderServer(tmp_path / "provider", step_seconds=0.15) as server:
        yield server


def adapter(url: str, key: str | None, **fields: object) -> TrainingProviderClient:
    return TrainingProviderResource(base_url=url, api_key=key, **fields).client()


@pytest.fixture
def tenant_a(provider_server: FineTuneProviderServer) -> Iterator[TrainingProviderClient]:
    with adapter(provider_server.api_url, TENANT_A_KEY) as client:
        yield client


@pytest.fixture
def tenant_b(provider_server: FineTuneProviderServer) -> Iterator[TrainingProviderClient]:
    with adapter(provider_server.api_url, TENANT_B_KEY) as client:
        yield client


def poll_until_final(
    client: TrainingProviderClient, provider_job_id: str, timeout: float = 20.0
) -> list[ProviderJobState]:
    """Every distinct state seen while polling, the final one last."""
    seen: list[ProviderJobState] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = client.retrieve_job(provider_job_id)
        if not seen or seen[-1].status is not state.status:
            seen.append(state)
        if state.status in FINAL:
            return seen
        time.sleep(0.03)
    raise AssertionError(f"job {provider_job_id} not final in {timeout}s: {seen[-1].status}")
