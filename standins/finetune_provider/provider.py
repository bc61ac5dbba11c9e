"""The stand-in provider's rules: jobs move through OpenAI's statuses over time, a malformed
training file fails its job with a clear error, and a succeeded job leaves a tuned model that
answers from what it was trained on.

Time moves lazily: every read first brings the caller's jobs up to date (each phase lasts
``step_seconds``), so a job polled late has passed through every phase with the times it would
have had. A job entering ``running`` is trained in a thread of its own
(:mod:`.training_run`); it stays ``running`` until that is done, and its per-step metric events
show as their time comes.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from standins.finetune_provider.learning import BaseModel, TunedModel
from standins.finetune_provider.store import Store
from standins.finetune_provider.training_data import TrainingDataError, parse_training_file
from standins.finetune_provider.training_run import run_training

DEFAULT_STEP_SECONDS = 0.2
DEFAULT_BASE_MODELS = ("base-coder",)
DEFAULT_EPOCHS = 3
DEFAULT_BATCH_SIZE = 4
SUFFIX = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
ACTIVE = ("validating_files", "queued", "running")
MAX_EPOCHS = 50
MAX_BATCH_SIZE = 256


class ProviderRefusal(Exception):
    """A request the provider answers with an OpenAI-style error (status, code, message)."""

    def __init__(self, status: int, code: str, message: str, param: str | None = None) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.param = param
        super().__init__(message)


def owner_of(api_key: str) -> str:
    """The tenant of the stand-in: a hash of the API key (the key itself is never stored)."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]


INFERENCE_KEY_PREFIX = "sk-inf-"


def _new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


@dataclass(frozen=True)
class JobRequest:
    model: str
    training_file: str
    suffix: str | None = None
    seed: int | None = None
    n_epochs: int | None = None
    batch_size: int | None = None
    learning_rate_multiplier: float | None = None


class FineTuneProvider:
    """Files, jobs and models of every caller, kept in one :class:`Store`."""

    def __init__(
        self,
        store: Store,
        *,
        step_seconds: float = DEFAULT_STEP_SECONDS,
        base_models: tuple[str, ...] = DEFAULT_BASE_MODELS,
    ) -> None:
        self.store = store
        self.step_seconds = step_seconds
        self.base_models = base_models
        self._base = BaseModel()
        self._tuned: dict[str, TunedModel] = {}
        self._locks_guard = threading.Lock()
        self._job_locks: dict[str, threading.RLock] = {}
        self._training: set[str] = set()

    # --- files -------------------------------------------------------------------------------

    def upload(self, owner: str, filename: str, purpose: str, content: bytes) -> dict[str, Any]:
        row = {
            "id": _new_id("file"),
            "owner": owner,
            "filename": filename,
            "purpose": purpose,
            "bytes": len(content),
            "created_at": time.time(),
            "content": content,
        }
        self.store.add_file(row)
        return row

    def file(self, owner: str, file_id: str) -> dict[str, Any]:
        row = self.store.file(owner, file_id)
        if row is None:
            raise ProviderRefusal(404, "file_not_found", f"No such File object: {file_id}", "id")
        return row

    # --- jobs --------------------------------------------------------------------------------

    def create_job(self, owner: str, request: JobRequest) -> dict[str, Any]:
        training = self._checked(owner, request)
        now = time.time()
        job = {
            "id": _new_id("ftjob"),
            "owner": owner,
            "organization_id": f"org-{owner[:12]}",
            "model": request.model,
            "training_file": request.training_file,
            "suffix": request.suffix,
            "seed": request.seed if request.seed is not None else 42,
            "n_epochs": request.n_epochs or DEFAULT_EPOCHS,
            "batch_size": request.batch_size or DEFAULT_BATCH_SIZE,
            "learning_rate_multiplier": request.learning_rate_multiplier or 1.0,
            "status": "validating_files",
            "created_at": now,
            "phase_at": now,
        }
        self.store.add_job(job, _event(job, now, f"Validating training file: {training['id']}"))
        return self.store.job(owner, job["id"]) or job

    def _checked(self, owner: str, request: JobRequest) -> dict[str, Any]:
        """The request's training file, once the request is one the provider takes."""
        if request.model not in self.base_models:
            raise ProviderRefusal(
                400, "model_not_available", f"Model {request.model} is not available", "model"
            )
        training = self.store.file(owner, request.training_file)
        if training is None:
            raise ProviderRefusal(
                400,
                "invalid_training_file",
                f"File {request.training_file} not found",
                "training_file",
            )
        if training["purpose"] != "fine-tune":
            raise ProviderRefusal(
                400,
                "invalid_training_file",
                f"File {request.training_file} has purpose {training['purpose']!r}, "
                "not 'fine-tune'",
                "training_file",
            )
        if request.suffix is not None and not SUFFIX.fullmatch(request.suffix):
            raise ProviderRefusal(
                400,
                "invalid_suffix",
                "suffix: up to 64 characters of a-z, 0-9, '-' and '_'",
                "suffix",
            )
        for name, value, most in (
            ("n_epochs", request.n_epochs, MAX_EPOCHS),
            ("batch_size", request.batch_size, MAX_BATCH_SIZE),
        ):
            if value is not None and not 1 <= value <= most:
                raise ProviderRefusal(
                    400, "invalid_hyperparameters", f"{name} must be 1 to {most}", name
                )
        return training

    def job(self, owner: str, job_id: str) -> dict[str, Any]:
        self._advance(owner, job_id)
        row = self.store.job(owner, job_id)
        if row is None:
            raise ProviderRefusal(404, "job_not_found", f"No such fine-tuning job: {job_id}", "id")
        return row

    def jobs(self, owner: str) -> list[dict[str, Any]]:
        for row in self.store.jobs(owner):
            self._advance(owner, row["id"])
        return self.store.jobs(owner)

    def events(self, owner: str, job_id: str) -> list[dict[str, Any]]:
        self.job(owner, job_id)
        return self.store.events(owner, job_id, time.time())

    def cancel(self, owner: str, job_id: str) -> dict[str, Any]:
        with self._job_lock(job_id):
            return self._cancel(owner, job_id)

    def _cancel(self, owner: str, job_id: str) -> dict[str, Any]:
        job = self.job(owner, job_id)
        if job["status"] not in ACTIVE:
            raise ProviderRefusal(
                400,
                "job_not_cancellable",
                f"Job {job_id} is {job['status']} and cannot be cancelled",
                "id",
            )
        now = time.time()
        self.store.update_job(
            job_id,
            {"status": "cancelled", "finished_at": now, "phase_at": now},
            [_event(job, now, "Job cancelled by the user")],
            drop_events_after=now,
        )
        return self.job(owner, job_id)

    def _job_lock(self, job_id: str) -> threading.RLock:
        """One job's phases (and its cancel) in order; other jobs, and their training, go on."""
        with self._locks_guard:
            return self._job_locks.setdefault(job_id, threading.RLock())

    def _advance(self, owner: str, job_id: str) -> None:
        """Bring one job up to now, phase by phase."""
        with self._job_lock(job_id):
            while True:
                job = self.store.job(owner, job_id)
                if job is None or job["status"] not in ACTIVE:
                    return
                due = self._due(job)
                if due is None or time.time() < due:
                    return
                self._next_phase(job, due)

    def _due(self, job: dict[str, Any]) -> float | None:
        """When the job's phase ends: one step of the clock, and for ``running`` not before
        training has finished (None while it trains)."""
        due = job["phase_at"] + self.step_seconds
        if job["status"] != "running":
            return due
        if job["trained_at"] is None:
            self._ensure_training(job)
            return None
        return max(due, job["trained_at"])

    def _next_phase(self, job: dict[str, Any], at: float) -> None:
        status = job["status"]
        if status == "validating_files":
            training = self.store.file(job["owner"], job["training_file"]) or {"content": b""}
            try:
                parse_training_file(training["content"])
            except TrainingDataError as error:
                self.store.update_job(
                    job["id"],
                    {
                        "status": "failed",
                        "phase_at": at,
                        "finished_at": at,
                        "error_code": error.code,
                        "error_message": error.message,
                        "error_param": "training_file",
                    },
                    [
                        _event(
                            job,
                            at,
                            f"Training file validation failed: {error.message}",
                            level="error",
                        )
                    ],
                )
                return
            self.store.update_job(
                job["id"],
                {"status": "queued", "phase_at": at},
                [_event(job, at, "Files validated, moving job to queued state")],
            )
        elif status == "queued":
            self._start_training(job, at)
        else:
            name = f"ft:{job['model']}:{job['suffix'] or 'personal'}:{job['id'].split('-')[1][:8]}"
            self.store.update_job(
                job["id"],
                {
                    "status": "succeeded",
                    "phase_at": at,
                    "finished_at": at,
                    "fine_tuned_model": name,
                },
                [
                    _event(job, at, f"New fine-tuned model created: {name}"),
                    _event(job, at, "The job has successfully completed"),
                ],
                model={
                    "name": name,
                    "owner": job["owner"],
                    "base": job["model"],
                    "job_id": job["id"],
                    "training_file": job["training_file"],
                    "created_at": at,
                },
            )

    def _start_training(self, job: dict[str, Any], at: float) -> None:
        self.store.update_job(
            job["id"],
            {"status": "running", "phase_at": at},
            [_event(job, at, "Fine-tuning job started")],
        )
        self._ensure_training({**job, "phase_at": at})

    def _ensure_training(self, job: dict[str, Any]) -> None:
        """A training thread for this running job, unless one is at work (after a restart of
        the stand-in, the first read of an untrained running job starts it again)."""
        with self._locks_guard:
            if job["id"] in self._training:
                return
            self._training.add(job["id"])
        threading.Thread(
            target=self._train, args=(job,), name=f"train-{job['id']}", daemon=True
        ).start()

    def _train(self, job: dict[str, Any]) -> None:
        try:
            training = self.store.file(job["owner"], job["training_file"]) or {"content": b""}
            outcome = run_training(
                parse_training_file(training["content"]),
                job["n_epochs"],
                job["batch_size"],
                job["phase_at"],
                self.step_seconds,
            )
            changes: dict[str, Any] = {
                "trained_at": outcome.finished_at,
                "trained_tokens": outcome.trained_tokens,
            }
            events = [
                _event(job, e["created_at"], e["message"], kind="metrics", data=e["data"])
                for e in outcome.metric_events
            ]
        except Exception as error:  # the job fails as a provider's would, rather than hang
            at = time.time()
            changes = {
                "status": "failed",
                "finished_at": at,
                "error_code": "training_error",
                "error_message": f"{type(error).__name__}: {error}",
            }
            events = [_event(job, at, f"Training failed: {error}", level="error")]
        with self._job_lock(job["id"]):
            try:
                current = self.store.job(job["owner"], job["id"])
                if current is not None and current["status"] == "running":  # not cancelled
                    self.store.update_job(job["id"], changes, events)
            finally:
                with self._locks_guard:
                    self._training.discard(job["id"])

    # --- inference keys ----------------------------------------------------------------------

    def create_inference_key(self, owner: str, suffix: str) -> str:
        """A key that may only chat with `owner`'s models tuned with `suffix` (and the base
        models): what an agent that runs those models is given, never the owner's key."""
        if not SUFFIX.fullmatch(suffix):
            raise ProviderRefusal(400, "invalid_request", f"invalid suffix {suffix!r}", "suffix")
        key = INFERENCE_KEY_PREFIX + secrets.token_urlsafe(24)
        self.store.add_inference_key(
            {"key_hash": owner_of(key), "owner": owner, "suffix": suffix, "created_at": time.time()}
        )
        return key

    def restriction(self, api_key: str) -> tuple[str, str] | None:
        """(owner, suffix) of an inference key; None for an owner's own key."""
        if not api_key.startswith(INFERENCE_KEY_PREFIX):
            return None
        row = self.store.inference_key(owner_of(api_key))
        if row is None:
            raise ProviderRefusal(401, "invalid_api_key", "Incorrect API key provided")
        return row["owner"], row["suffix"]

    @staticmethod
    def within_suffix(model: str, suffix: str | None) -> bool:
        return suffix is None or f":{suffix}:" in model

    # --- models ------------------------------------------------------------------------------

    def model_ids(self, owner: str) -> list[str]:
        return [*self.base_models, *(row["name"] for row in self.store.models(owner))]

    def answer(self, owner: str, model: str, question: str) -> str:
        """What `model` answers; a tuned model of another caller is "not found"."""
        if model in self.base_models:
            return self._base.answer(question)
        row = self.store.model(owner, model)
        if row is None:
            raise ProviderRefusal(
                404,
                "model_not_found",
                f"The model `{model}` does not exist or you do not have access to it.",
                "model",
            )
        if model not in self._tuned:
            training = self.store.file(owner, row["training_file"]) or {"content": b""}
            self._tuned[model] = TunedModel(parse_training_file(training["content"]), self._base)
        return self._tuned[model].answer(question)


def _event(
    job: dict[str, Any],
    at: float,
    message: str,
    *,
    level: str = "info",
    kind: str = "message",
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "id": _new_id("ftevent"),
        "job_id": job["id"],
        "owner": job["owner"],
        "created_at": at,
        "level": level,
        "message": message,
        "type": kind,
        "data": data,
    }
