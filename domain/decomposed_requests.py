"""Running a decomposed request: a coordinating parent session and one child session per subtask.

The parent never runs on an agent: it waits PENDING, is RUNNING once a child has started, and
ends when every child is settled: COMPLETED (all completed), PARTIALLY_COMPLETED (some did) or
FAILED (none did), with the children's results gathered and their metrics summed. It is never
retried itself (its `max_retries` is 0); retries belong to its children.

A child may start when every prerequisite (every dependency, whatever its type) COMPLETED: a
finished prerequisite satisfies FS, SS, FF and SF alike, so gating every type as FS never breaks
one, at the cost of the overlap SS/FF/SF would allow. A child whose prerequisite ended otherwise
for good (failed with no retry left, STOPPED, CANCELLED) can never start: it is CANCELLED.

Each child has a task (the subtask, with its estimate and dependency edges) that follows the
child's session through the task state machine.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from domain.decomposition import (
    SubtaskSpec,
    check_subtasks,
    dependency_edges,
    estimate_for,
    subtask_keys,
)
from domain.metrics import SessionMetrics
from domain.session import PROMPT_MAX, Session, SessionStatus
from domain.task import TASK_MACHINE, Task, TaskDependency, TaskStatus

_S = SessionStatus
_T = TaskStatus
SUCCEEDED = frozenset({_S.COMPLETED, _S.PARTIALLY_COMPLETED})
_SUMMED = ("tokens_in", "tokens_out", "cost_usd", "api_calls", "api_errors", "retries")
_NOT_VIA = frozenset({_T.BLOCKED, _T.PAUSED})  # a task passes through these only as a target


@dataclass(frozen=True)
class Decomposition:
    """What a decomposed submit writes besides the parent: children, their tasks, the edges."""

    children: list[Session]
    tasks: list[Task]
    dependencies: list[TaskDependency]


def plan_decomposition(
    parent: Session, subtasks: Sequence[SubtaskSpec], child_max_retries: int, at: datetime
) -> Decomposition:
    """Children of `parent` for `subtasks` (checked first: `InvalidInput` when refused).

    A child takes the request's settings (as the parent holds them; `child_max_retries` for
    retries, since the parent keeps none) unless its subtask sets them.
    """
    check_subtasks(subtasks)
    children: list[Session] = []
    tasks: list[Task] = []
    task_ids: dict[str, str] = {}
    for position, (key, spec) in enumerate(zip(subtask_keys(subtasks), subtasks, strict=True), 1):
        child = Session(
            tenant_id=parent.tenant_id,
            parent_id=parent.id,
            title=spec.title,
            initial_prompt=child_prompt(spec.prompt, parent.title, position, len(subtasks)),
            session_type=parent.session_type,
            priority=parent.priority,
            model=spec.model or parent.model,
            agent_config=parent.agent_config,
            max_duration_seconds=spec.max_duration_seconds or parent.max_duration_seconds,
            max_retries=child_max_retries if spec.max_retries is None else spec.max_retries,
            tags=parent.tags,
            metadata={"subtask": key},
            required_capabilities=(
                parent.required_capabilities
                if spec.required_capabilities is None
                else spec.required_capabilities
            ),
            cost_cap=spec.cost_cap or parent.cost_cap,
            repository=parent.repository,  # each child on a branch of its own
            ref=parent.ref,
            created_at=at,
            updated_at=at,
        )
        task = Task(
            tenant_id=parent.tenant_id,
            title=spec.title,
            description=spec.prompt,
            session_id=child.id,
            required_capabilities=child.required_capabilities,
            estimate=spec.estimate or estimate_for(spec.prompt),
            created_at=at,
            updated_at=at,
        )
        children.append(child)
        tasks.append(task)
        task_ids[key] = task.id
    dependencies = [
        TaskDependency(
            task_id=task_ids[edge.task_id],
            depends_on_id=task_ids[edge.depends_on_id],
            dependency_type=edge.dependency_type,
        )
        for edge in dependency_edges(subtasks)
    ]
    return Decomposition(children, tasks, dependencies)


def child_prompt(prompt: str, parent_title: str, position: int, count: int) -> str:
    """The subtask's prompt and a line saying what it is part of (left out if it won't fit)."""
    with_context = f'{prompt}\n\n(This is subtask {position} of {count} of "{parent_title}".)'
    return with_context if len(with_context) <= PROMPT_MAX else prompt


# --- when a child may start -------------------------------------------------------------------


def prerequisites_met(prerequisites: Iterable[Session]) -> bool:
    return all(session.status is _S.COMPLETED for session in prerequisites)


def broken_prerequisite(prerequisites: Iterable[Session]) -> Session | None:
    """A prerequisite that ended, for good, other than COMPLETED (the child can never start)."""
    return next(
        (s for s in prerequisites if s.settled and s.status is not _S.COMPLETED),
        None,
    )


def has_started(session: Session) -> bool:
    return session.metrics.started_at is not None


# --- how the parent ends ----------------------------------------------------------------------


def parent_outcome(children: Sequence[Session]) -> SessionStatus | None:
    """The parent's final state once every child is settled; None while one is not."""
    if not children or not all(child.settled for child in children):
        return None
    completed = sum(child.status in SUCCEEDED for child in children)
    if completed == len(children):
        return _S.COMPLETED
    return _S.PARTIALLY_COMPLETED if completed else _S.FAILED


def gathered_result(children: Sequence[Session]) -> dict[str, Any]:
    """The children's results, each with its state; their answers and changed files together."""
    gathered = []
    for child in children:
        result = child.result or {}
        gathered.append(
            {
                "id": child.id,
                "title": child.title,
                "status": child.status.value,
                "text": result.get("text") or child.status_reason,
                "files": list(result.get("files") or []),
            }
        )
    files = {item["file"] for child in gathered for item in child["files"] if "file" in item}
    return {
        "children": gathered,
        "text": "\n\n".join(f"[{c['status']}] {c['title']}: {c['text']}" for c in gathered),
        "files_changed": len(files),
        "completed": sum(child.status in SUCCEEDED for child in children),
    }


def summed_metrics(base: SessionMetrics, children: Iterable[Session]) -> SessionMetrics:
    """`base` (the parent's timestamps) with the children's tokens, cost and calls added up."""
    totals: dict[str, Any] = dict.fromkeys(_SUMMED, 0)
    for child in children:
        for name in _SUMMED:
            totals[name] += getattr(child.metrics, name)
    return base.model_copy(update=totals)


# --- the child's task follows its session -----------------------------------------------------


def task_steps(current: TaskStatus, child: Session, ready: bool) -> list[TaskStatus]:
    """The task transitions that bring a child's task in line with its session (maybe none).

    `ready`: the child's prerequisites are met. A task never goes back (a retried session's task
    stays IN_PROGRESS); a cancelled child whose task cannot be CANCELLED any more ends FAILED.
    """
    target = _task_target(child, ready)
    if target is None:
        return []
    steps = _path(current, target)
    if steps is None and target is _T.CANCELLED:
        steps = _path(current, _T.FAILED)
    return steps or []


def _task_target(child: Session, ready: bool) -> TaskStatus | None:
    if child.status in SUCCEEDED:
        return _T.COMPLETED
    if child.settled:
        return _T.CANCELLED if child.status is _S.CANCELLED else _T.FAILED
    match child.status:
        case _S.PENDING:
            return _T.READY if ready else None
        case _S.QUEUED:
            return _T.ASSIGNED
        case _S.PAUSED:
            return _T.PAUSED
        case _:  # RUNNING, DEGRADED, or failed with a retry to come
            return _T.IN_PROGRESS


def _path(current: TaskStatus, target: TaskStatus) -> list[TaskStatus] | None:
    """Shortest walk from `current` to `target` (not through BLOCKED/PAUSED); None if none."""
    if current is target:
        return []
    previous: dict[TaskStatus, TaskStatus] = {}
    queue = deque([current])
    while queue:
        state = queue.popleft()
        for following in sorted(TASK_MACHINE.transitions[state]):
            if following in previous or following is current:
                continue
            previous[following] = state
            if following is target:
                path = [following]
                while path[-1] in previous and previous[path[-1]] is not current:
                    path.append(previous[path[-1]])
                return list(reversed(path))
            if following not in _NOT_VIA:
                queue.append(following)
    return None
