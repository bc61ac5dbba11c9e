"""Checkpoints: numbered snapshots of a session's progress (1..n, the newest 100 kept).

The supervisor records one at each completed agent step (an assistant message that ended): the
step's attempt, its text (what the agent said, secrets scrubbed), the files changed so far and
the tokens so far. The step's `agent.step` event carries the same data, so a reader of the live
stream sees what the agent said as it says it. A retried attempt
starts from the last checkpoint of an earlier attempt: its prompt carries that context, so the
agent continues the work instead of beginning it again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import Field

from domain.clock import utcnow
from domain.domain_model import ValueObject
from domain.secret_scrubbing import scrub

MAX_CHECKPOINTS_KEPT = 100
STEP_EVENT = "agent.step"  # a completed agent step; written with its checkpoint
STEP_TEXT_MAX = 2_000  # an agent step's text kept in its checkpoint and its event
RESUME_FILES_SHOWN = 50


class Checkpoint(ValueObject):
    sequence: int = Field(ge=1)
    data: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=utcnow)

    @property
    def attempt(self) -> int:
        return int(self.data.get("attempt", 0))


def step_checkpoint_data(
    *,
    attempt: int,
    message_id: str,
    text: str,
    files_changed: Sequence[str],
    tokens_in: int,
    tokens_out: int,
) -> dict[str, Any]:
    """What a checkpoint (and the event) of one completed agent step holds: the text scrubbed of
    secrets, then clipped to a bound (clipped first, a secret cut at the bound could escape its
    pattern)."""
    return {
        "attempt": attempt,
        "message_id": message_id,
        "text": scrub(text)[:STEP_TEXT_MAX],
        "files_changed": sorted(set(files_changed)),
        "tokens_in": tokens_in,
        "tokens_out": tokens_out,
    }


def last_checkpoint_before(checkpoints: Sequence[Checkpoint], attempt: int) -> Checkpoint | None:
    """The newest checkpoint an earlier attempt recorded (None on a first attempt)."""
    earlier = [c for c in checkpoints if c.attempt < attempt]
    return max(earlier, key=lambda c: c.sequence) if earlier else None


def prompt_for_attempt(initial_prompt: str, checkpoints: Sequence[Checkpoint], attempt: int) -> str:
    """The prompt an attempt starts with: the task, and where an earlier attempt left it."""
    last = last_checkpoint_before(checkpoints, attempt)
    if last is None:
        return initial_prompt
    files = list(last.data.get("files_changed") or [])
    shown = ", ".join(files[:RESUME_FILES_SHOWN]) + (
        f" and {len(files) - RESUME_FILES_SHOWN} more" if len(files) > RESUME_FILES_SHOWN else ""
    )
    lines = [
        initial_prompt,
        "",
        f"(Attempt {attempt + 1}. An earlier attempt stopped after checkpoint #{last.sequence}.",
        f"Files it had changed: {shown or 'none'}.",
    ]
    text = str(last.data.get("text") or "").strip()
    if text:
        lines.append(f"Its last step said: {text}")
    lines.append("Continue the task from there; check those files' current state first.)")
    return "\n".join(lines)
