"""A tenant's fine-tuning data: its good sessions as chat examples (system / user / assistant,
the agent's tool calls kept as the assistant's actions), secrets scrubbed, duplicates removed,
and an evaluation split held out.

The split hashes each example's content with the tenant: the same example always lands on the
same side, whatever else is in the dataset, so a growing dataset never moves an evaluation item
into training, and two duplicates can never straddle the line (they are one example).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import Field

from domain.domain_model import ValueObject
from domain.secret_scrubbing import find_secrets, scrub

DEFAULT_SYSTEM_PROMPT = "You are {tenant}'s coding agent. Carry out the task in the repository."
SPLIT_BUCKETS = 2**32


class DatasetPolicy(ValueObject):
    """The quality bar and the split."""

    eval_fraction: float = Field(default=0.2, ge=0, lt=1)
    min_answer_chars: int = Field(default=1, ge=1)
    max_attempts: int | None = Field(default=None, ge=1)  # a session that needed more is out
    require_changes: bool = False  # only sessions that changed at least one file
    system_prompt: str = Field(default=DEFAULT_SYSTEM_PROMPT, max_length=2_000)


class SessionTranscript(ValueObject):
    """What a completed session contributes: the task, the agent's actions and its answer."""

    session_id: str
    title: str
    prompt: str
    answer: str
    tool_calls: list[str] = Field(default_factory=list)
    files_changed: list[str] = Field(default_factory=list)
    attempts: int = Field(default=1, ge=1)


class EvaluationItem(ValueObject):
    key: str
    messages: list[dict[str, Any]]  # system and user: what each model is asked
    reference: str  # the answer the tenant's session gave


class TrainingExample(ValueObject):
    key: str  # the content's hash: equal examples, equal keys
    session_id: str
    messages: list[dict[str, Any]]

    def evaluation_item(self) -> EvaluationItem:
        return EvaluationItem(
            key=self.key, messages=self.messages[:2], reference=self.messages[-1]["content"]
        )


class TrainingDataset(ValueObject):
    tenant_id: str
    train: list[TrainingExample]
    eval: list[TrainingExample]
    skipped: dict[str, int]  # sessions below the bar, by reason
    duplicates_removed: int
    secrets_scrubbed: int

    @property
    def token_estimate(self) -> int:
        """About four characters a token, the usual rule of thumb for English and code."""
        return sum(len(json.dumps(e.messages)) for e in self.train) // 4


def build_dataset(
    tenant: str, sessions: Iterable[SessionTranscript], policy: DatasetPolicy
) -> TrainingDataset:
    skipped: Counter[str] = Counter()
    unique: dict[str, TrainingExample] = {}
    duplicates = scrubbed = 0
    for session in sessions:
        reason = _below_the_bar(session, policy)
        if reason:
            skipped[reason] += 1
            continue
        example, found = _example(tenant, session, policy)
        scrubbed += found
        if example.key in unique:
            duplicates += 1
            continue
        unique[example.key] = example
    examples = sorted(unique.values(), key=lambda e: e.key)
    held_out = [e for e in examples if _held_out(tenant, e.key, policy.eval_fraction)]
    kept = {e.key for e in held_out}
    return TrainingDataset(
        tenant_id=tenant,
        train=[e for e in examples if e.key not in kept],
        eval=held_out,
        skipped=dict(skipped),
        duplicates_removed=duplicates,
        secrets_scrubbed=scrubbed,
    )


def to_jsonl(examples: Sequence[TrainingExample]) -> str:
    return "".join(json.dumps({"messages": e.messages}, sort_keys=True) + "\n" for e in examples)


def _below_the_bar(session: SessionTranscript, policy: DatasetPolicy) -> str | None:
    if len(session.answer.strip()) < policy.min_answer_chars:
        return "no answer"
    if policy.max_attempts is not None and session.attempts > policy.max_attempts:
        return "too many attempts"
    if policy.require_changes and not session.files_changed:
        return "no file changed"
    return None


def _example(
    tenant: str, session: SessionTranscript, policy: DatasetPolicy
) -> tuple[TrainingExample, int]:
    found = len(find_secrets(session.prompt)) + len(find_secrets(session.answer))
    prompt, answer = scrub(session.prompt.strip()), scrub(session.answer.strip())
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": policy.system_prompt.format(tenant=tenant)},
        {"role": "user", "content": prompt},
    ]
    if session.tool_calls:
        calls = [
            {
                "id": f"call_{index}",
                "type": "function",
                "function": {"name": tool, "arguments": "{}"},
            }
            for index, tool in enumerate(session.tool_calls, start=1)
        ]
        messages.append({"role": "assistant", "content": None, "tool_calls": calls})
        messages.extend(
            {"role": "tool", "tool_call_id": call["id"], "content": "completed"} for call in calls
        )
    messages.append({"role": "assistant", "content": answer})
    key = example_key(prompt, answer)
    return TrainingExample(key=key, session_id=session.session_id, messages=messages), found


def example_key(prompt: str, answer: str) -> str:
    """The identity of an example: its task and its answer (what a duplicate repeats)."""
    return hashlib.sha256(f"{prompt}\x00{answer}".encode()).hexdigest()


def _held_out(tenant: str, key: str, fraction: float) -> bool:
    digest = hashlib.sha256(f"{tenant}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:4], "big") < fraction * SPLIT_BUCKETS
