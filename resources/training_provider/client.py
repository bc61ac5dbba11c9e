"""The fine-tuning provider through the official `openai` client, in the domain's terms.

Everything the fine-tuning lineage asks of a provider: upload a training file
(``purpose="fine-tune"``), create / retrieve / cancel a job, read its events, chat with a model.
Retries are the openai client's own (429, 408, 409 and 5xx, and connection errors, with
exponential backoff and jitter, honouring ``Retry-After``), bounded by ``max_retries``; what
still fails becomes a typed `ProviderError` with the provider's code and message.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import openai

from domain.fine_tuning import FineTuningJob, TrainingParameters
from domain.provider_job import (
    ProviderJobError,
    ProviderJobState,
    ProviderJobStatus,
    ensure_cancellable,
)
from resources.training_provider.errors import (
    ProviderAuthenticationFailed,
    ProviderError,
    ProviderProtocolError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderUnavailable,
)

FINE_TUNE_PURPOSE = "fine-tune"
JSONL_MEDIA_TYPE = "application/jsonl"
DEFAULT_LEARNING_RATE = TrainingParameters().learning_rate
EVENTS_PAGE = 100


@dataclass(frozen=True)
class UploadedFile:
    id: str
    filename: str
    bytes: int


@dataclass(frozen=True)
class JobEvent:
    """One line of a job's log; ``type == "metrics"`` events carry ``data`` (step, loss...)."""

    id: str
    created_at: datetime
    level: str
    message: str
    type: str
    data: dict[str, Any] | None


@dataclass(frozen=True)
class ChatAnswer:
    model: str
    text: str
    prompt_tokens: int
    completion_tokens: int


def _moment(epoch_seconds: int | None) -> datetime | None:
    return datetime.fromtimestamp(epoch_seconds, UTC) if epoch_seconds is not None else None


def _state(job: Any, base_url: str) -> ProviderJobState:
    try:
        status = ProviderJobStatus(job.status)
    except ValueError:
        raise ProviderProtocolError(
            base_url, "read job", "unknown_status", f"job {job.id} has status {job.status!r}"
        ) from None
    error = getattr(job, "error", None)
    code = getattr(error, "code", None)
    message = getattr(error, "message", None)
    return ProviderJobState(
        provider_job_id=job.id,
        status=status,
        base_model=job.model,
        fine_tuned_model=job.fine_tuned_model,
        trained_tokens=job.trained_tokens,
        error=(
            ProviderJobError(code=code or "error", message=message or "", param=error.param)
            if code or message
            else None
        ),
        created_at=_moment(job.created_at) or datetime.now(UTC),
        finished_at=_moment(job.finished_at),
    )


def hyperparameters(parameters: TrainingParameters) -> dict[str, Any]:
    """Our parameters in the provider's terms: the learning rate as a multiplier of ours."""
    return {
        "n_epochs": parameters.epochs,
        "batch_size": parameters.batch_size,
        "learning_rate_multiplier": parameters.learning_rate / DEFAULT_LEARNING_RATE,
    }


def final_training_metrics(events: list[JobEvent]) -> dict[str, float]:
    """The last metrics step's loss and accuracy, in `TrainingMetrics` terms (empty when the
    job logged no metrics)."""
    for event in reversed(events):
        if event.type == "metrics" and event.data and "train_loss" in event.data:
            metrics = {"loss": float(event.data["train_loss"])}
            accuracy = event.data.get("train_mean_token_accuracy")
            if accuracy is not None:
                metrics["accuracy"] = float(accuracy)
            return metrics
    return {}


class TrainingProviderClient:
    """One provider account (base URL + key); build it with `TrainingProviderResource`."""

    def __init__(self, client: openai.OpenAI, base_url: str) -> None:
        self._client = client
        self.base_url = base_url

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def __enter__(self) -> TrainingProviderClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _asking(self, action: str) -> Iterator[None]:
        """Translate the openai client's errors (after its retries) into ours."""
        try:
            yield
        except openai.APIStatusError as error:
            body = error.body if isinstance(error.body, dict) else {}
            code = error.code or str(body.get("type") or "http_error")
            message = str(body.get("message") or error.message)
            status = error.status_code
            kind: type[ProviderError] = ProviderRejected
            if isinstance(error, openai.RateLimitError):
                kind = ProviderRateLimited
            elif isinstance(error, openai.AuthenticationError | openai.PermissionDeniedError):
                kind = ProviderAuthenticationFailed
            elif status >= 500 or status == 408:
                kind = ProviderUnavailable
            raise kind(self.base_url, action, code, message, status) from None
        except openai.APITimeoutError:
            raise ProviderUnavailable(
                self.base_url, action, "timeout", "the provider did not answer in time"
            ) from None
        except openai.APIConnectionError as error:
            raise ProviderUnavailable(
                self.base_url, action, "connection_error", str(error.message)
            ) from None
        except openai.APIError as error:
            raise ProviderProtocolError(
                self.base_url, action, "invalid_response", str(error.message)
            ) from None

    def upload_training_file(self, content: bytes, filename: str) -> UploadedFile:
        with self._asking("upload training file"):
            uploaded = self._client.files.create(
                file=(filename, content, JSONL_MEDIA_TYPE), purpose=FINE_TUNE_PURPOSE
            )
        return UploadedFile(uploaded.id, uploaded.filename, uploaded.bytes)

    def create_job(
        self,
        training_file_id: str,
        base_model: str,
        parameters: TrainingParameters,
        *,
        suffix: str | None = None,
        seed: int | None = None,
    ) -> ProviderJobState:
        """Submit a supervised fine-tuning job; `suffix` names the tenant in the tuned model."""
        options: dict[str, Any] = {}
        if suffix is not None:
            options["suffix"] = suffix
        if seed is not None:
            options["seed"] = seed
        method = {
            "type": "supervised",
            "supervised": {"hyperparameters": hyperparameters(parameters)},
        }
        with self._asking("create fine-tuning job"):
            job = self._client.fine_tuning.jobs.create(
                model=base_model, training_file=training_file_id, method=method, **options
            )
        return _state(job, self.base_url)

    def retrieve_job(self, provider_job_id: str) -> ProviderJobState:
        with self._asking("retrieve fine-tuning job"):
            job = self._client.fine_tuning.jobs.retrieve(provider_job_id)
        return _state(job, self.base_url)

    def job_events(self, provider_job_id: str) -> list[JobEvent]:
        """All of the job's events, oldest first (the provider pages them newest first)."""
        with self._asking("list fine-tuning job events"):
            page = self._client.fine_tuning.jobs.list_events(provider_job_id, limit=EVENTS_PAGE)
            events = [
                JobEvent(
                    id=event.id,
                    created_at=_moment(event.created_at) or datetime.now(UTC),
                    level=event.level,
                    message=event.message,
                    type=event.type or "message",
                    data=event.data if isinstance(event.data, dict) else None,
                )
                for event in page
            ]
        return list(reversed(events))

    def cancel_job(self, job: FineTuningJob) -> ProviderJobState:
        """Cancel our job's provider job; a finished job is refused here (`NotAllowedInStatus`)
        before the provider is asked."""
        ensure_cancellable(job)
        if job.provider_job_id is None:
            raise ProviderRejected(
                self.base_url,
                "cancel fine-tuning job",
                "not_submitted",
                f"job {job.id} was never submitted to the provider",
            )
        with self._asking("cancel fine-tuning job"):
            cancelled = self._client.fine_tuning.jobs.cancel(job.provider_job_id)
        return _state(cancelled, self.base_url)

    def chat(
        self, model: str, question: str, *, system: str | None = None, max_tokens: int = 512
    ) -> ChatAnswer:
        """One question to `model` (a base model, or a tuned one of this account)."""
        messages: list[dict[str, str]] = []
        if system:
            messages.append({"role": "system", "content": system})
        messages.append({"role": "user", "content": question})
        with self._asking("chat completion"):
            completion = self._client.chat.completions.create(
                model=model,
                messages=messages,
                max_tokens=max_tokens,  # type: ignore[arg-type]
            )
        usage = completion.usage
        return ChatAnswer(
            model=completion.model,
            text=completion.choices[0].message.content or "",
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
        )

    def complete(self, model: str, messages: list[dict[str, Any]]) -> str:
        """`services.model_evaluation.ChatModels`: the answer to a system + user conversation."""
        system = next((m["content"] for m in messages if m.get("role") == "system"), None)
        question = next(m["content"] for m in reversed(messages) if m.get("role") == "user")
        return self.chat(model, question, system=system).text

    def model_ids(self) -> list[str]:
        """The models this account may use: base models and its own tuned ones."""
        with self._asking("list models"):
            return [model.id for model in self._client.models.list()]
