"""What an agent session has cost and produced so far, folded from its messages and events.

Tokens and cost live on each assistant message and grow while it streams; the tracker keeps the
latest figures per message, so counting the same message twice never double-counts.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from domain.metrics import SessionMetrics
from resources.opencode.models import FileDiff, Message, MessageInfo

WRITING_TOOLS = frozenset({"write", "edit", "multiedit", "patch", "apply_patch"})


@dataclass(frozen=True)
class UsageDelta:
    tokens_in: int
    tokens_out: int
    cost_usd: Decimal


@dataclass
class TurnTracker:
    base: SessionMetrics
    retries: int = 0
    tool_calls: int = 0
    error: dict[str, Any] | None = None
    idle_seen: bool = False
    messages: list[Message] = field(default_factory=list)
    diff: list[FileDiff] = field(default_factory=list)
    _assistant: dict[str, MessageInfo] = field(default_factory=dict)

    def observe_message(self, info: MessageInfo) -> None:
        if info.role == "assistant":
            self._assistant[info.id] = info

    def observe_message_dict(self, info: dict[str, Any]) -> None:
        self.observe_message(MessageInfo.model_validate(info))

    def usage_delta(self) -> UsageDelta:
        infos = self._assistant.values()
        return UsageDelta(
            tokens_in=int(sum(info.tokens.input for info in infos)),
            tokens_out=int(sum(info.tokens.output + info.tokens.reasoning for info in infos)),
            cost_usd=Decimal(str(round(sum(info.cost for info in infos), 8))),
        )

    def metrics(self) -> SessionMetrics:
        delta = self.usage_delta()
        errors = self.retries + (1 if self.error else 0)
        return self.base.model_copy(
            update={
                "tokens_in": self.base.tokens_in + delta.tokens_in,
                "tokens_out": self.base.tokens_out + delta.tokens_out,
                "cost_usd": round(self.base.cost_usd + float(delta.cost_usd), 8),
                "api_calls": self.base.api_calls + len(self._assistant),
                "api_errors": self.base.api_errors + errors,
            }
        )

    def _tool_parts(self, tools: frozenset[str] | None = None) -> Iterator[tuple[str, dict]]:
        """(workspace-relative path, part) of this session's own tool calls that name a file."""
        for message in self.messages:
            root = message.info.path.root
            for part in message.parts:
                if part.get("type") != "tool" or (
                    tools is not None and part.get("tool") not in tools
                ):
                    continue
                tool_input = (part.get("state") or {}).get("input") or {}
                path = tool_input.get("filePath") or tool_input.get("path")
                if isinstance(path, str):
                    yield workspace_relative(path, root), part

    def touched_paths(self, tools: frozenset[str] | None = None) -> set[str]:
        """Workspace-relative paths this agent session's own tools (or only `tools`) named."""
        return {path for path, _ in self._tool_parts(tools)}

    def diff_pending(self) -> set[str]:
        """Files this session's tools wrote that the diff does not list (yet): the server
        computes the diff after the session goes idle."""
        return self.touched_paths(WRITING_TOOLS) - {item.file for item in self.diff}

    def own_diff(self) -> list[FileDiff]:
        """The workspace diff restricted to files this session touched, plus the files its
        own tools wrote that the diff does not list, as the tool calls describe them.

        The server's diff covers its whole workspace, where other sessions may be writing at
        the same time (it may even credit a file to another session): a result must never show
        another session's (or tenant's) files, nor miss one of its own.
        """
        touched = self.touched_paths()
        listed = [item for item in self.diff if item.file in touched]
        pending = self.diff_pending()
        from_tools: dict[str, FileDiff] = {}
        for path, part in self._tool_parts(WRITING_TOOLS):
            if path in pending and (part.get("state") or {}).get("status") == "completed":
                from_tools[path] = _diff_from_tool(path, part["state"])
        return listed + list(from_tools.values())

    def result(self) -> dict[str, Any]:
        """The session's result: the agent's last answer and the files it changed."""
        answers = [m for m in self.messages if m.info.role == "assistant" and m.text]
        files = [
            {
                "file": item.file,
                "status": item.status,
                "additions": int(item.additions),
                "deletions": int(item.deletions),
            }
            for item in self.own_diff()
        ]
        return {
            "text": answers[-1].text if answers else "",
            "files": files,
            "files_changed": len(files),
            "additions": sum(f["additions"] for f in files),
            "deletions": sum(f["deletions"] for f in files),
            "tool_calls": self.tool_calls,
        }


def _diff_from_tool(path: str, state: dict[str, Any]) -> FileDiff:
    """A file change as a completed write/edit call reports it (its line counts, if any)."""
    metadata = state.get("metadata") or {}
    counts = metadata.get("filediff") or {}
    content = (state.get("input") or {}).get("content")
    written = isinstance(content, str) and not counts
    return FileDiff(
        file=path,
        status="added" if written and metadata.get("exists") is False else "modified",
        additions=len(content.splitlines()) if written else counts.get("additions", 0),
        deletions=counts.get("deletions", 0),
    )


def workspace_relative(path: str, root: str | None) -> str:
    """`path` relative to the workspace `root` (the diff's file names are relative to it)."""
    if root and os.path.isabs(path):
        return os.path.relpath(path, root)
    return path
