"""One job's training, measured: the per-step metric events and the trained tokens.

Run off the request path (a thread per running job, see `FineTuneProvider`), so a large
training file keeps its job ``running`` for as long as training takes, like a real provider,
while every other request is answered at once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from standins.finetune_provider.learning import training_trace
from standins.finetune_provider.training_data import TrainingPair
from standins.openai_chat import estimate_tokens


@dataclass(frozen=True)
class TrainingOutcome:
    finished_at: float
    trained_tokens: int
    metric_events: list[dict[str, Any]]  # (created_at, message, data) for `_event`


def run_training(
    pairs: list[TrainingPair],
    n_epochs: int,
    batch_size: int,
    started_at: float,
    step_seconds: float,
) -> TrainingOutcome:
    """Train on `pairs`; the step events are spread over the running phase, which lasts the
    longer of one step of the stand-in's clock and the training itself."""
    trace = training_trace(pairs, n_epochs, batch_size)
    finished = time.time()
    span = max(step_seconds, finished - started_at)
    per_epoch = sum(estimate_tokens(p.prompt) + estimate_tokens(p.answer) for p in pairs)
    events = []
    for step in trace:
        events.append(
            {
                "created_at": started_at + span * step.step / (step.total_steps + 1),
                "message": (
                    f"Step {step.step}/{step.total_steps}: training loss={step.train_loss:.4f}"
                ),
                "data": {
                    "step": step.step,
                    "total_steps": step.total_steps,
                    "epoch": step.epoch,
                    "train_loss": step.train_loss,
                    "train_mean_token_accuracy": step.train_mean_token_accuracy,
                },
            }
        )
    return TrainingOutcome(max(finished, started_at), per_epoch * n_epochs, events)
