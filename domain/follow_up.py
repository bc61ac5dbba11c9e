"""Follow-up messages to a session, and sessions forked from a checkpoint: what they say.

A follow-up sent while a session works is queued (a `session.message` event) and delivered to the
agent, in order, when its current turn ends (`session.message_delivered`). One sent to a session
that has settled becomes a new child session, told what the first one did; so does one queued at
the very moment its session ended (see `SessionService.message` and the supervisor).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from domain.checkpoint import Checkpoint
from domain.errors import InvalidInput
from domain.events import SessionEvent
from domain.session import PROMPT_MAX, TITLE_MAX, Session

MESSAGE_EVENT = "session.message"
DELIVERED_EVENT = "session.message_delivered"
FOLLOW_UP_EVENTS = (MESSAGE_EVENT, DELIVERED_EVENT)
CONTEXT_CHARS = 3_000  # of the earlier task and its result, in a follow-up session's prompt


def new_message_id() -> str:
    return f"msg-{uuid.uuid4().hex[:16]}"


def checked_message(text: str) -> str:
    """1 to 10,000 characters, not blank (a prompt's rule: it becomes one)."""
    if not text.strip():
        raise InvalidInput("text", "must not be blank")
    if len(text) > PROMPT_MAX:
        raise InvalidInput("text", f"must be at most {PROMPT_MAX} characters, got {len(text)}")
    return text


def undelivered(events: Sequence[SessionEvent]) -> list[SessionEvent]:
    """Queued messages not yet delivered, oldest first (from the two follow-up event types)."""
    delivered = {e.data.get("message_id") for e in events if e.event_type == DELIVERED_EVENT}
    return [
        e
        for e in events
        if e.event_type == MESSAGE_EVENT and e.data.get("message_id") not in delivered
    ]


def follow_up_title(session: Session) -> str:
    return f"Follow-up: {session.title}"[:TITLE_MAX]


def follow_up_prompt(session: Session, text: str) -> str:
    """The message, then what the earlier session was asked and how it ended (clipped)."""
    result = json.dumps(session.result, default=str) if session.result else "no result"
    context = (
        f"(This follows up session {session.id}, which ended {session.status.value}. "
        f"It was asked:\n{_clip(session.initial_prompt, CONTEXT_CHARS)}\n"
        f"Its result: {_clip(result, CONTEXT_CHARS)})"
    )
    return _fit(text, context)


def fork_prompt(session: Session, checkpoint: Checkpoint, prompt: str | None) -> str:
    """The task (the source's, or a new one), and what the source had done at the checkpoint."""
    data: dict[str, Any] = checkpoint.data
    files = ", ".join(list(data.get("files_changed") or [])[:20]) or "none"
    step = " ".join(str(data.get("text") or "").split())
    context = (
        f"(Forked from session {session.id} at its checkpoint #{checkpoint.sequence}. "
        f"Files changed by then: {files}."
        + (f" Its step said: {_clip(step, CONTEXT_CHARS)}" if step else "")
        + " Carry on from there; check those files' current state first.)"
    )
    return _fit(prompt or session.initial_prompt, context)


def _fit(text: str, context: str) -> str:
    """The text whole, the context clipped so the prompt stays within its 10,000 characters."""
    room = PROMPT_MAX - len(text) - 2
    if room < 200:
        return text
    return f"{text}\n\n{_clip(context, room)}"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[: limit - 1]}…"
