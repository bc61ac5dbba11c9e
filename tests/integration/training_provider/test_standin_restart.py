"""A stand-in stopped while a job trained (its thread gone with the process) trains the job
again on the first read after it starts: the job is never stuck in running."""

from __future__ import annotations

import time
from pathlib import Path

from standins.finetune_provider.provider import FineTuneProvider, JobRequest, owner_of
from standins.finetune_provider.store import Store
from tests.integration.training_provider.conftest import TRAINING, chat_jsonl


def test_a_job_left_running_untrained_by_a_stopped_provider_is_trained_after_restart(
    tmp_path: Path,
) -> None:
    owner = owner_of("sk-restart")
    before = FineTuneProvider(Store(tmp_path), step_seconds=0.01)
    uploaded = before.upload(owner, "t.jsonl", "fine-tune", chat_jsonl(TRAINING))
    job = before.create_job(owner, JobRequest(model="base-coder", training_file=uploaded["id"]))
    # What a stop mid-training leaves: running, no trained_at, no thread.
    before.store.update_job(job["id"], {"status": "running", "phase_at": time.time()}, [])

    after = FineTuneProvider(Store(tmp_path), step_seconds=0.01)
    deadline = time.monotonic() + 20
    while (row := after.job(owner, job["id"]))["status"] == "running":
        assert time.monotonic() < deadline, "the job stayed running"
        time.sleep(0.02)
    assert row["status"] == "succeeded"
    assert row["trained_tokens"] and row["trained_tokens"] > 0
    assert row["fine_tuned_model"]
