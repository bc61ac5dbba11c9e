"""Tasks: the pieces a large request is decomposed into, linked by typed dependencies (a DAG)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from pydantic import Field, field_validator

from domain.clock import utcnow
from domain.domain_model import DomainModel, ValueObject
from domain.estimate import Estimate
from domain.ids import new_task_id
from domain.state_machine import StateMachine, Transitions

MAX_DECOMPOSITION_DEPTH = 10


class TaskStatus(StrEnum):
    PENDING = "PENDING"
    READY = "READY"
    ASSIGNED = "ASSIGNED"
    IN_PROGRESS = "IN_PROGRESS"
    BLOCKED = "BLOCKED"
    PAUSED = "PAUSED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    SKIPPED = "SKIPPED"


_T = TaskStatus
TASK_MACHINE: StateMachine[TaskStatus] = StateMachine(
    "task",
    {
        _T.PENDING: frozenset({_T.READY, _T.ASSIGNED, _T.CANCELLED}),
        _T.READY: frozenset({_T.ASSIGNED, _T.CANCELLED}),
        _T.ASSIGNED: frozenset({_T.IN_PROGRESS, _T.CANCELLED}),
        _T.IN_PROGRESS: frozenset({_T.COMPLETED, _T.FAILED, _T.BLOCKED, _T.PAUSED}),
        _T.BLOCKED: frozenset({_T.IN_PROGRESS, _T.CANCELLED}),
        _T.PAUSED: frozenset({_T.IN_PROGRESS, _T.CANCELLED}),
        _T.COMPLETED: frozenset(),
        _T.FAILED: frozenset(),
        _T.CANCELLED: frozenset(),
        _T.SKIPPED: frozenset(),
    },
)


class DependencyType(StrEnum):
    """FS finish-to-start (usual), SS start-to-start, FF finish-to-finish, SF start-to-finish."""

    FINISH_TO_START = "FS"
    START_TO_START = "SS"
    FINISH_TO_FINISH = "FF"
    START_TO_FINISH = "SF"


class TaskDependency(ValueObject):
    task_id: str
    depends_on_id: str
    dependency_type: DependencyType = DependencyType.FINISH_TO_START

    @field_validator("depends_on_id")
    @classmethod
    def _not_self(cls, value: str, info: Any) -> str:
        if value == info.data.get("task_id"):
            raise ValueError("a task cannot depend on itself")
        return value


class Task(Transitions, DomainModel):
    machine: ClassVar[StateMachine[TaskStatus]] = TASK_MACHINE

    id: str = Field(default_factory=new_task_id)
    tenant_id: str
    title: str = Field(max_length=200)
    description: str = Field(default="", max_length=10_000)
    parent_task_id: str | None = None
    session_id: str | None = None
    depth: int = Field(default=0, ge=0, le=MAX_DECOMPOSITION_DEPTH)
    required_capabilities: list[str] = Field(default_factory=list)
    estimate: Estimate | None = None
    status: TaskStatus = TaskStatus.PENDING
    status_reason: str = ""
    version: int = Field(default=1, ge=1)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)

    @field_validator("title")
    @classmethod
    def _title(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be blank")
        return value
