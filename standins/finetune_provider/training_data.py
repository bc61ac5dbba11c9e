"""Reading a chat-format JSONL training file into (prompt, answer) pairs, or refusing it.

Each line is ``{"messages": [{"role": "system"|"user"|"assistant"|"tool", "content": ...}]}``,
as the OpenAI fine-tuning API takes it. Every assistant turn makes one pair: the text of the
user message before it, and the assistant's text (or, when it only acts, its tool calls written
out). A file that is not that is refused like OpenAI does: code ``invalid_training_file`` and a
message naming the line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from standins.openai_chat import content_text

INVALID_TRAINING_FILE = "invalid_training_file"
ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})


@dataclass(frozen=True)
class TrainingPair:
    prompt: str
    answer: str


class TrainingDataError(ValueError):
    """The file cannot be trained on; `code` and `message` as the provider reports them."""

    def __init__(self, message: str, code: str = INVALID_TRAINING_FILE) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


def answer_text(message: dict[str, Any]) -> str:
    """What an assistant turn says: its text, else its tool calls as ``name(arguments)``."""
    text = content_text(message.get("content")).strip()
    if text:
        return text
    calls = []
    for call in message.get("tool_calls") or []:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict) and function.get("name"):
            calls.append(f"{function['name']}({function.get('arguments') or ''})")
    return "\n".join(calls)


def _pairs_of(number: int, record: Any) -> list[TrainingPair]:
    if not isinstance(record, dict) or not isinstance(record.get("messages"), list):
        raise TrainingDataError(f"line {number}: no 'messages' list (chat format expected)")
    pairs: list[TrainingPair] = []
    last_user = ""
    for message in record["messages"]:
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            role = message.get("role") if isinstance(message, dict) else message
            raise TrainingDataError(f"line {number}: a message has role {role!r}")
        if message["role"] == "user":
            last_user = content_text(message.get("content")).strip()
        elif message["role"] == "assistant":
            answer = answer_text(message)
            if not last_user or not answer:
                raise TrainingDataError(
                    f"line {number}: an assistant turn needs a user message before it and "
                    "content or tool calls"
                )
            pairs.append(TrainingPair(last_user, answer))
    if not pairs:
        raise TrainingDataError(f"line {number}: no assistant message to learn from")
    return pairs


def parse_training_file(content: bytes) -> list[TrainingPair]:
    """The pairs of a JSONL chat file; `TrainingDataError` at the first line that is not one."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        raise TrainingDataError("the file is not UTF-8 text") from None
    pairs: list[TrainingPair] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except ValueError:
            raise TrainingDataError(f"line {number} is not valid JSON") from None
        pairs.extend(_pairs_of(number, record))
    if not pairs:
        raise TrainingDataError("the file has no training examples")
    return pairs
