"""Splitting a request into subtasks: what a subtask is, the graph a list of them describes, and
the rule-based decomposer.

A subtask is named by its `key` (default: its 0-based position, as a string); `depends_on` names
other subtasks by key or by 0-based index. The graph is checked like any decomposition: known
subtasks, no cycle, at most 10 edges deep (`check_dependency_graph`).

The decomposer splits only on explicit structure, in this order of preference:
- a numbered list ("1. ..." or "1) ..."), lines under an item (or deeper-indented) continuing it;
- a bullet list ("- ...", "* ...", "• ...");
- in a one-line prompt, steps joined by ";" or by ", then" / ". Then" / "and then" (a bare
  "then" is not a separator: "if it fails then fix it" is one step); separators inside [...],
  quotes or backticks are text, and a longer prompt (a stack trace, code) is never split there.
Text before the first list item is the request's introduction: the coordinating parent keeps it.
Each step depends on the one before (FS) and gets a PERT estimate from its length. Fewer than two
steps: [] (the request runs as one session).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ConfigDict, Field, field_validator

from domain.dag import check_dependency_graph
from domain.domain_model import ValueObject
from domain.errors import InvalidInput
from domain.estimate import Estimate
from domain.field_rules import checked_model, checked_prompt, checked_title
from domain.quota import CostCap
from domain.session import MAX_DURATION_SECONDS, MIN_DURATION_SECONDS, PROMPT_MAX, TITLE_MAX
from domain.task import DependencyType, TaskDependency

MAX_SUBTASKS = 50
SUBTASK_PROMPT_MAX = PROMPT_MAX
TITLE_CHARS = 80  # a decomposed step's title: its first line, clipped
KEY_MAX = 64
# PERT by length: most likely 0.25 h plus 0.05 h per word; optimistic half, pessimistic double.
BASE_HOURS = 0.25
HOURS_PER_WORD = 0.05


class SubtaskSpec(ValueObject):
    """One subtask of a request. Fields left None are inherited from the request."""

    model_config = ConfigDict(frozen=True, extra="forbid")  # a misspelt field is an error
    title: str
    prompt: str
    key: str | None = Field(default=None, min_length=1, max_length=KEY_MAX)
    depends_on: list[str | int] = Field(default_factory=list)
    dependency_type: DependencyType = DependencyType.FINISH_TO_START
    required_capabilities: list[str] | None = None
    model: str | None = None
    max_duration_seconds: int | None = Field(
        default=None, ge=MIN_DURATION_SECONDS, le=MAX_DURATION_SECONDS
    )
    max_retries: int | None = Field(default=None, ge=0, le=20)
    cost_cap: CostCap | None = None
    estimate: Estimate | None = None

    @field_validator("title")
    @classmethod
    def _title(cls, value: str) -> str:
        return checked_title(value, TITLE_MAX)

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, value: str) -> str:
        return checked_prompt(value, SUBTASK_PROMPT_MAX)

    @field_validator("model")
    @classmethod
    def _model(cls, value: str | None) -> str | None:
        return checked_model(value)


def subtask_at(index: int, fields: Mapping[str, Any]) -> SubtaskSpec:
    """Subtask `index` (0-based) of a list from its fields; a broken rule names which subtask,
    by index and key, since a list of them has many titles and prompts."""
    try:
        return SubtaskSpec(**fields)
    except InvalidInput as error:
        key = fields.get("key")
        named = f"subtask #{index}" + (f" ({key!r})" if isinstance(key, str) and key else "")
        raise InvalidInput("subtasks", f"{named}: {error.field} {error.reason}") from None


# --- the graph of a subtask list --------------------------------------------------------------


def subtask_keys(subtasks: Sequence[SubtaskSpec]) -> list[str]:
    return [subtask.key or str(index) for index, subtask in enumerate(subtasks)]


def dependency_edges(subtasks: Sequence[SubtaskSpec]) -> list[TaskDependency]:
    """The edges between subtask keys; an unknown or self dependency is `InvalidInput`."""
    keys = subtask_keys(subtasks)
    known = set(keys)
    edges: list[TaskDependency] = []
    for key, subtask in zip(keys, subtasks, strict=True):
        for target in subtask.depends_on:
            if isinstance(target, int):
                if not 0 <= target < len(keys):
                    raise InvalidInput(
                        "subtasks", f"subtask {key!r} depends on unknown subtask #{target}"
                    )
                target = keys[target]
            if target not in known:
                raise InvalidInput(
                    "subtasks", f"subtask {key!r} depends on unknown subtask {target!r}"
                )
            if target == key:
                raise InvalidInput("subtasks", f"subtask {key!r} depends on itself")
            edge = TaskDependency(
                task_id=key, depends_on_id=target, dependency_type=subtask.dependency_type
            )
            if edge not in edges:
                edges.append(edge)
    return edges


def check_subtasks(subtasks: Sequence[SubtaskSpec]) -> list[str]:
    """The keys in the order they can run, or `InvalidInput` saying why the list is refused."""
    if len(subtasks) > MAX_SUBTASKS:
        raise InvalidInput("subtasks", f"at most {MAX_SUBTASKS} subtasks, got {len(subtasks)}")
    keys = subtask_keys(subtasks)
    duplicates = sorted(key for key, count in Counter(keys).items() if count > 1)
    if duplicates:
        raise InvalidInput("subtasks", f"duplicate subtask keys {duplicates}")
    try:
        return check_dependency_graph(keys, dependency_edges(subtasks))
    except InvalidInput as refused:
        raise InvalidInput("subtasks", refused.reason) from None


# --- the rule-based decomposer ----------------------------------------------------------------

_NUMBERED = re.compile(r"^(?P<indent>\s*)\d{1,3}[.)]\s+(?P<text>\S.*)$")
_BULLET = re.compile(r"^(?P<indent>\s*)[-*•]\s+(?P<text>\S.*)$")
# Text that is never split (bracketed, quoted, code), else a separator between steps.
_STEP_TOKEN = re.compile(
    r"\[[^\]]*\]|\"[^\"]*\"|`[^`]*`"
    r"|(?P<separator>\s*;\s*|\s*[,.;]\s*(?:and\s+)?then\s+|\s+and\s+then\s+)",
    re.IGNORECASE,
)


def decompose(prompt: str) -> list[SubtaskSpec]:
    """The steps of `prompt` as a chain of subtasks, or [] when it has no explicit structure."""
    found = _listed(prompt, _NUMBERED) or _listed(prompt, _BULLET) or _sequenced(prompt)
    if len(found) < 2:
        return []
    return [
        SubtaskSpec(
            key=f"step-{number}",
            title=_title(text, number),
            prompt=text,
            depends_on=[f"step-{number - 1}"] if number > 1 else [],
            estimate=estimate_for(text),
        )
        for number, text in enumerate(found, start=1)
    ]


def estimate_for(text: str) -> Estimate:
    """A rough PERT estimate from the length of a step's text."""
    likely = BASE_HOURS + HOURS_PER_WORD * len(text.split())
    return Estimate(
        optimistic_hours=round(likely / 2, 2),
        most_likely_hours=round(likely, 2),
        pessimistic_hours=round(likely * 2, 2),
    )


def _listed(prompt: str, item: re.Pattern[str]) -> list[str]:
    """The items of the first list level `item` finds; other lines after an item continue it."""
    items: list[list[str]] = []
    level: int | None = None
    for line in prompt.splitlines():
        match = item.match(line)
        if match is not None and (level is None or len(match["indent"]) <= level):
            level = len(match["indent"]) if level is None else level
            items.append([match["text"].strip()])
        elif items:
            items[-1].append(line.strip())
    return [text for lines in items if (text := "\n".join(lines).strip())]


def _sequenced(prompt: str) -> list[str]:
    if len(prompt.strip().splitlines()) > 1:
        return []
    parts: list[str] = []
    start = 0
    for match in _STEP_TOKEN.finditer(prompt):
        if match["separator"] is not None:
            parts.append(prompt[start : match.start()])
            start = match.end()
    parts.append(prompt[start:])
    steps = [part.strip() for part in parts]
    return [step[0].upper() + step[1:] for step in steps if step]


def _title(text: str, number: int) -> str:
    first = " ".join(text.splitlines()[0].split()).rstrip(".:").strip()
    if not first:
        return f"Step {number}"
    return first if len(first) <= TITLE_CHARS else first[: TITLE_CHARS - 1].rstrip() + "…"
