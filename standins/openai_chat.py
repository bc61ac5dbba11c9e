"""The OpenAI chat-completions wire format, as far as the scripted model needs it.

Reading requests (message text, token estimates) and building responses: non-streaming
``chat.completion`` objects, streaming ``chat.completion.chunk`` objects, usage blocks and
OpenAI-style error bodies. Pure functions, no I/O.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

CHARS_PER_TOKEN = 4


def content_text(content: Any) -> str:
    """The text of a message ``content``: a string, or a list of parts (``{"type": "text"}``)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif isinstance(part, str):
                texts.append(part)
        return "\n".join(texts)
    return str(content)


def first_user_text(messages: list[dict[str, Any]]) -> str:
    for message in messages:
        if message.get("role") == "user":
            return content_text(message.get("content"))
    return ""


def system_text(messages: list[dict[str, Any]]) -> str:
    return "\n".join(
        content_text(message.get("content"))
        for message in messages
        if message.get("role") in ("system", "developer")
    )


def estimate_tokens(text: str) -> int:
    """A realistic token count for ``text``: about one token per four characters, at least 1."""
    return max(1, round(len(text) / CHARS_PER_TOKEN))


def prompt_tokens(body: dict[str, Any]) -> int:
    """Tokens of everything the model reads: all messages, their tool calls, and the tools."""
    pieces = []
    for message in body.get("messages") or []:
        pieces.append(content_text(message.get("content")))
        for call in message.get("tool_calls") or []:
            pieces.append(json.dumps(call.get("function", {})))
    if body.get("tools"):
        pieces.append(json.dumps(body["tools"]))
    return estimate_tokens("".join(pieces))


def usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def new_completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def tool_call(call_id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments)},
    }


def completion(
    model: str,
    *,
    text: str | None,
    tool_calls: list[dict[str, Any]] | None,
    usage_block: dict[str, int],
) -> dict[str, Any]:
    """A non-streaming ``chat.completion`` object with one choice."""
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": new_completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if tool_calls else "stop",
            }
        ],
        "usage": usage_block,
    }


def text_pieces(text: str) -> list[str]:
    """The text split into word-sized stream deltas that join back to ``text``."""
    pieces: list[str] = []
    for word in text.split(" "):
        pieces.append(word + " ")
    pieces[-1] = pieces[-1][:-1]
    return [piece for piece in pieces if piece]


def stream_chunks(
    model: str,
    *,
    text: str | None,
    tool_calls: list[dict[str, Any]] | None,
    usage_block: dict[str, int],
    include_usage: bool,
) -> Iterator[dict[str, Any]]:
    """The ``chat.completion.chunk`` objects of one streamed answer, in order.

    Role first, then the text deltas or the tool calls (each call whole in one delta, with its
    ``index``), then a chunk with ``finish_reason``, then (when ``include_usage``) a chunk with
    empty ``choices`` and the ``usage``, as OpenAI does for ``stream_options.include_usage``.
    """
    completion_id = new_completion_id()
    created = int(time.time())

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": choices,
            **extra,
        }

    def delta(payload: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return chunk([{"index": 0, "delta": payload, "finish_reason": finish_reason}])

    yield delta({"role": "assistant", "content": ""})
    for piece in text_pieces(text or ""):
        yield delta({"content": piece})
    for index, call in enumerate(tool_calls or []):
        yield delta({"tool_calls": [{"index": index, **call}]})
    yield delta({}, "tool_calls" if tool_calls else "stop")
    if include_usage:
        yield chunk([], usage=usage_block)


def sse_data(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


def error_body(message: str, error_type: str, code: str | None = None) -> dict[str, Any]:
    """An OpenAI-style error body: ``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": error_type, "param": None, "code": code}}
