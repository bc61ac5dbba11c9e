"""What the OpenCode server sends, as small typed models that tolerate unknown fields and types.

The server (opencode-ai 1.18.33) grows fields and event types between releases; a supervisor
must keep working when it does, so every model ignores what it does not know.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class Health(_Lenient):
    healthy: bool
    version: str


class AgentSession(_Lenient):
    id: str
    title: str = ""
    directory: str = ""


class Worktree(_Lenient):
    """A git worktree the server made (`POST /experimental/worktree`): a directory of its own on
    branch `opencode/<name>`, under the server's HOME (`.local/share/opencode/worktree/...`)."""

    name: str
    branch: str = ""
    directory: str


class SessionStatus(_Lenient):
    """busy | idle | retry (the server is retrying the model: attempt, message, next)."""

    type: str
    attempt: int | None = None
    message: str | None = None
    next: int | None = None


class Tokens(_Lenient):
    input: float = 0
    output: float = 0
    reasoning: float = 0


class MessageTime(_Lenient):
    created: int = 0
    completed: int | None = None


class MessagePath(_Lenient):
    cwd: str = ""
    root: str = ""


class MessageInfo(_Lenient):
    """A user or assistant message; assistants carry tokens, cost and an error if it failed."""

    id: str
    role: str
    session_id: str = Field(default="", alias="sessionID")
    parent_id: str | None = Field(default=None, alias="parentID")
    cost: float = 0.0
    tokens: Tokens = Field(default_factory=Tokens)
    error: dict[str, Any] | None = None
    finish: str | None = None
    provider_id: str | None = Field(default=None, alias="providerID")  # assistants: who answered
    model_id: str | None = Field(default=None, alias="modelID")
    time: MessageTime = Field(default_factory=MessageTime)
    path: MessagePath = Field(default_factory=MessagePath)

    @property
    def completed(self) -> bool:
        return self.time.completed is not None or self.error is not None


class Message(_Lenient):
    info: MessageInfo
    parts: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(part.get("text", "") for part in self.parts if part.get("type") == "text")

    @property
    def tool_calls(self) -> int:
        return sum(1 for part in self.parts if part.get("type") == "tool")


class FileDiff(_Lenient):
    file: str = ""
    additions: float = 0
    deletions: float = 0
    status: str | None = None


def session_id_of(properties: dict[str, Any]) -> str | None:
    """The session an event's `properties` name (routing reads it before building the model)."""
    found = properties.get("sessionID") or (properties.get("info") or {}).get("sessionID")
    return found or (properties.get("part") or {}).get("sessionID")


class ServerEvent(_Lenient):
    """One event of `GET /event`; `session_id` is None for server-wide events."""

    id: str | None = None
    type: str
    properties: dict[str, Any] = Field(default_factory=dict)

    @property
    def session_id(self) -> str | None:
        return session_id_of(self.properties)

    @property
    def status(self) -> SessionStatus | None:
        if self.type == "session.status" and "status" in self.properties:
            return SessionStatus.model_validate(self.properties["status"])
        return None

    @property
    def error(self) -> dict[str, Any] | None:
        return self.properties.get("error") if self.type == "session.error" else None

    @property
    def error_name(self) -> str | None:
        error = self.error
        return error.get("name") if error else None

    @property
    def message_diff(self) -> tuple[str, list[FileDiff]] | None:
        """(user message id, its diff) when the server announces a user message's diff.

        The server computes it in the background after each step of the turn, the last time
        just after `session.idle` (a `message.updated` of the user message with
        `summary.diffs`); until then `GET /session/{id}/diff?messageID=` may be empty or behind.
        """
        info = self.properties.get("info") or {}
        summary = info.get("summary")
        if self.type != "message.updated" or info.get("role") != "user":
            return None
        if not isinstance(summary, dict) or "diffs" not in summary:
            return None
        return info.get("id", ""), [FileDiff.model_validate(diff) for diff in summary["diffs"]]


class GlobalEvent(_Lenient):
    """One event of `GET /global/event`: every directory's events of the server, each wrapped.

    `directory` is the directory (instance) the event belongs to: a session's events carry the
    directory the session runs in; project events say "global"; server events (connected,
    heartbeat) have none. The server also repeats each durable event as a `sync` payload
    (`syncEvent`, no `properties`): it names no session, so routing by session ignores it.
    """

    directory: str | None = None
    project: str | None = None
    payload: ServerEvent

    @property
    def type(self) -> str:
        return self.payload.type

    @property
    def session_id(self) -> str | None:
        return self.payload.session_id
