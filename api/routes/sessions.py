"""Sessions: submit (idempotent), read, list, steer, follow up, fork; their checkpoints, children,
tasks and the tenant's statistics. Every call goes through `SessionService` with the caller,
which checks the role; another tenant's session answers 404 like one that does not exist.

Live events (`/sessions/{id}/events`) are served by the live-events module.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, status
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from api.authentication import CallerDep
from api.errors import ApiError
from api.services import Services, services
from domain.decomposition import MAX_SUBTASKS, SubtaskSpec, subtask_at
from domain.quota import CostCap
from domain.session import (
    DESCRIPTION_MAX,
    MAX_DURATION_SECONDS,
    MIN_DURATION_SECONDS,
    PROMPT_MAX,
    TITLE_MAX,
    Priority,
    Session,
    SessionStatus,
    SessionType,
)
from domain.task import DependencyType
from services.session_service import SessionService, SessionTree, SubmitSession

router = APIRouter(prefix="/sessions", tags=["sessions"])
MAX_PAGE = 200
PriorityName = Literal["CRITICAL", "HIGH", "MEDIUM", "LOW", "DEFERRED"]
IDEMPOTENCY_KEY_MAX = 200
# Metadata the service keeps for itself (the request digest, retried attempts) stays inside.
_INTERNAL_METADATA = frozenset({"request_digest"})


async def _sessions(wiring: Annotated[Services, Depends(services)]) -> SessionService:
    return wiring.factory.sessions()


SessionsDep = Annotated[SessionService, Depends(_sessions)]


class _Strict(BaseModel):
    """Unknown fields are refused (422), so a misspelt option never goes silently unused."""

    model_config = ConfigDict(extra="forbid")


class CostCapIn(_Strict):
    max_cost_usd: float | None = Field(default=None, gt=0)
    max_tokens: int | None = Field(default=None, gt=0)


class SubtaskIn(_Strict):
    title: str = Field(min_length=1, max_length=TITLE_MAX)
    prompt: str = Field(min_length=1, max_length=PROMPT_MAX)
    key: str | None = Field(default=None, min_length=1, max_length=64)
    depends_on: list[str | int] = Field(default_factory=list, max_length=MAX_SUBTASKS)
    dependency_type: DependencyType = DependencyType.FINISH_TO_START
    required_capabilities: list[str] | None = Field(default=None, max_length=50)
    model: str | None = Field(default=None, max_length=200)
    max_duration_seconds: int | None = Field(
        default=None, ge=MIN_DURATION_SECONDS, le=MAX_DURATION_SECONDS
    )
    max_retries: int | None = Field(default=None, ge=0, le=20)
    cost_cap: CostCapIn | None = None


class CreateSession(_Strict):
    title: str | None = Field(
        default=None,
        min_length=1,
        max_length=TITLE_MAX,
        description="Default: the prompt's first line.",
    )
    prompt: str = Field(min_length=1, max_length=PROMPT_MAX)
    description: str = Field(default="", max_length=DESCRIPTION_MAX)
    session_type: SessionType = SessionType.EXECUTION
    priority: PriorityName = Field(default="MEDIUM", description="CRITICAL takes a LEAD.")
    model: str | None = Field(default=None, max_length=200, description="provider/model")
    max_duration_seconds: int = Field(
        default=3600, ge=MIN_DURATION_SECONDS, le=MAX_DURATION_SECONDS
    )
    max_retries: int = Field(default=3, ge=0, le=20)
    tags: list[str] = Field(default_factory=list, max_length=50)
    required_capabilities: list[str] = Field(default_factory=list, max_length=50)
    cost_cap: CostCapIn | None = None
    repository: str | None = Field(default=None, max_length=63)
    ref: str | None = Field(default=None, max_length=250)
    subtasks: list[SubtaskIn] = Field(default_factory=list, max_length=MAX_SUBTASKS)
    decompose: bool = False
    idempotency_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=IDEMPOTENCY_KEY_MAX,
        description="Or the Idempotency-Key header (the same value if both are given).",
    )


class Steer(_Strict):
    reason: str | None = Field(default=None, min_length=1, max_length=500)


class FollowUpIn(_Strict):
    text: str = Field(min_length=1, max_length=PROMPT_MAX)


class ForkIn(_Strict):
    checkpoint: int | None = Field(default=None, ge=1, description="Default: the latest.")
    prompt: str | None = Field(
        default=None, min_length=1, max_length=PROMPT_MAX, description="Default: the source's."
    )
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)


class DecomposeIn(_Strict):
    prompt: str = Field(min_length=1, max_length=PROMPT_MAX)


class SessionOut(BaseModel):
    id: str
    tenant_id: str
    title: str
    description: str
    prompt: str
    session_type: SessionType
    priority: PriorityName
    status: SessionStatus
    status_reason: str
    model: str | None
    parent_id: str | None
    tags: list[str]
    metadata: dict[str, Any]
    metrics: dict[str, Any]
    retry_count: int
    max_retries: int
    next_attempt_at: datetime | None
    max_duration_seconds: int
    required_capabilities: list[str]
    cost_cap: dict[str, Any] | None
    repository: str | None
    ref: str | None
    agent_id: str | None
    idempotency_key: str | None
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    checkpoints: int
    unroutable_since: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, session: Session) -> SessionOut:
        return cls(
            id=session.id,
            tenant_id=session.tenant_id,
            title=session.title,
            description=session.description,
            prompt=session.initial_prompt,
            session_type=session.session_type,
            priority=session.priority.name,  # type: ignore[arg-type]
            status=session.status,
            status_reason=session.status_reason,
            model=session.model,
            parent_id=session.parent_id,
            tags=session.tags,
            metadata={k: v for k, v in session.metadata.items() if k not in _INTERNAL_METADATA},
            metrics={
                **session.metrics.model_dump(mode="json"),
                "total_tokens": session.metrics.total_tokens,
            },
            retry_count=session.retry_count,
            max_retries=session.max_retries,
            next_attempt_at=session.next_attempt_at,
            max_duration_seconds=session.max_duration_seconds,
            required_capabilities=session.required_capabilities,
            cost_cap=session.cost_cap.model_dump(mode="json") if session.cost_cap else None,
            repository=session.repository,
            ref=session.ref,
            agent_id=session.agent_id,
            idempotency_key=session.idempotency_key,
            result=session.result,
            error=session.error,
            checkpoints=len(session.checkpoints),
            unroutable_since=session.unroutable_since,
            created_at=session.created_at,
            updated_at=session.updated_at,
        )


class SessionPage(BaseModel):
    items: list[SessionOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: last.")


class CheckpointOut(BaseModel):
    sequence: int
    created_at: datetime
    data: dict[str, Any]


class FollowUpOut(BaseModel):
    message_id: str
    session_id: str = Field(description="The session it was queued on, or the new one.")
    delivery: Literal["queued", "session"]


class SessionNode(BaseModel):
    session: SessionOut
    children: list[SessionNode]

    @classmethod
    def of(cls, tree: SessionTree) -> SessionNode:
        return cls(session=SessionOut.of(tree.session), children=[cls.of(c) for c in tree.children])


class TaskOut(BaseModel):
    id: str
    title: str
    status: str
    status_reason: str
    session_id: str | None
    depends_on: list[str]
    required_capabilities: list[str]
    estimate: dict[str, Any] | None


class Statistics(BaseModel):
    total: int
    by_status: dict[str, int]
    by_type: dict[str, int]
    by_priority: dict[str, int]


class SubtaskOut(BaseModel):
    key: str | None
    title: str
    prompt: str
    depends_on: list[str | int]
    estimate: dict[str, Any] | None


class Decomposition(BaseModel):
    subtasks: list[SubtaskOut]


def _tenant(caller: CallerDep) -> str:
    assert caller.tenant_id is not None  # an API caller is always a tenant's
    return caller.tenant_id


def _submit_request(body: CreateSession, header_key: str | None) -> SubmitSession:
    key = body.idempotency_key
    if header_key is not None and key is not None and header_key != key:
        raise ApiError(
            422,
            "invalid_request",
            "the Idempotency-Key header and the idempotency_key field differ",
            {"field": "idempotency_key"},
        )
    subtasks: list[SubtaskSpec] = [
        subtask_at(index, item.model_dump(exclude_none=True))
        for index, item in enumerate(body.subtasks)
    ]
    first_line = next((line.strip() for line in body.prompt.splitlines() if line.strip()), "")
    return SubmitSession(
        title=body.title or first_line[:TITLE_MAX] or "untitled",
        prompt=body.prompt,
        description=body.description,
        session_type=body.session_type,
        priority=Priority[body.priority],
        model=body.model,
        max_duration_seconds=body.max_duration_seconds,
        max_retries=body.max_retries,
        tags=body.tags,
        required_capabilities=body.required_capabilities,
        cost_cap=CostCap(**body.cost_cap.model_dump()) if body.cost_cap else None,
        repository=body.repository,
        ref=body.ref,
        subtasks=subtasks,
        decompose=body.decompose,
        idempotency_key=key or header_key,
    )


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_session(
    body: CreateSession,
    caller: CallerDep,
    service: SessionsDep,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", min_length=1, max_length=IDEMPOTENCY_KEY_MAX)
    ] = None,
) -> SessionOut:
    """Submit a session (MEMBER; CRITICAL: LEAD). The same request with the same idempotency
    key answers with the same session; another request with a used key answers 409."""
    request = _submit_request(body, idempotency_key)
    # Only the submission (its transaction) goes to a worker thread: a sync route would go
    # there a second time to check its answer against SessionOut.
    session = await run_in_threadpool(service.submit, caller, _tenant(caller), request)
    return SessionOut.of(session)


@router.get("")
def list_sessions(
    caller: CallerDep,
    service: SessionsDep,
    status_: Annotated[list[SessionStatus] | None, Query(alias="status")] = None,
    session_type: Annotated[list[SessionType] | None, Query(alias="type")] = None,
    priority: Annotated[list[PriorityName] | None, Query()] = None,
    tag: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    parent_id: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
) -> SessionPage:
    """The tenant's sessions, newest first; filters repeat (`?status=RUNNING&status=PAUSED`)."""
    found = service.list(
        caller,
        _tenant(caller),
        statuses=set(status_ or []) or None,
        session_types=set(session_type or []) or None,
        priorities={Priority[name] for name in priority or []} or None,
        tag=tag,
        parent_id=parent_id,
        limit=limit + 1,
        before_id=cursor,
    )
    page = found[:limit]
    more = len(found) > limit
    return SessionPage(
        items=[SessionOut.of(s) for s in page], next_cursor=page[-1].id if more else None
    )


@router.get("/statistics")
def statistics(caller: CallerDep, service: SessionsDep) -> Statistics:
    """How many of the tenant's sessions are in each status, of each type and priority."""
    return Statistics(**service.statistics(caller, _tenant(caller)))


@router.get("/{session_id}")
def get_session(session_id: str, caller: CallerDep, service: SessionsDep) -> SessionOut:
    return SessionOut.of(service.get(caller, _tenant(caller), session_id))


def _steer(
    action: str, session_id: str, body: Steer | None, caller: CallerDep, service: SessionService
) -> SessionOut:
    steer = getattr(service, action)
    args = (caller, _tenant(caller), session_id)
    session = steer(*args, body.reason) if body and body.reason else steer(*args)
    return SessionOut.of(session)


@router.post("/{session_id}/cancel")
def cancel_session(
    session_id: str, caller: CallerDep, service: SessionsDep, body: Steer | None = None
) -> SessionOut:
    """Before it starts: CANCELLED; running or paused: aborted on its agent (MEMBER)."""
    return _steer("cancel", session_id, body, caller, service)


@router.post("/{session_id}/pause")
def pause_session(
    session_id: str, caller: CallerDep, service: SessionsDep, body: Steer | None = None
) -> SessionOut:
    """A RUNNING session: its agent's turn aborted, held PAUSED until resumed (MEMBER)."""
    return _steer("pause", session_id, body, caller, service)


@router.post("/{session_id}/resume")
def resume_session(
    session_id: str, caller: CallerDep, service: SessionsDep, body: Steer | None = None
) -> SessionOut:
    """A PAUSED session goes on where it stood (MEMBER)."""
    return _steer("resume", session_id, body, caller, service)


@router.post("/{session_id}/stop")
def stop_session(
    session_id: str, caller: CallerDep, service: SessionsDep, body: Steer | None = None
) -> SessionOut:
    """A running, degraded or paused session STOPPED for good (MEMBER)."""
    return _steer("stop", session_id, body, caller, service)


@router.post("/{session_id}/retry")
def retry_session(
    session_id: str, caller: CallerDep, service: SessionsDep, body: Steer | None = None
) -> SessionOut:
    """A FAILED, TIMEOUT or ORPHANED session back to PENDING now, counting a retry (MEMBER)."""
    return _steer("retry", session_id, body, caller, service)


@router.post("/{session_id}/messages", status_code=status.HTTP_202_ACCEPTED)
def send_message(
    session_id: str, body: FollowUpIn, caller: CallerDep, service: SessionsDep
) -> FollowUpOut:
    """A follow-up (MEMBER): queued while the session works, delivered to its agent when the
    current turn ends; to a session that has ended, a new child session continuing it."""
    follow_up = service.message(caller, _tenant(caller), session_id, body.text)
    return FollowUpOut(**follow_up.model_dump())


@router.post("/{session_id}/fork", status_code=status.HTTP_201_CREATED)
def fork_session(
    session_id: str, body: ForkIn, caller: CallerDep, service: SessionsDep
) -> SessionOut:
    """A new child session carrying on from one of the session's checkpoints (MEMBER)."""
    forked = service.fork(
        caller,
        _tenant(caller),
        session_id,
        checkpoint=body.checkpoint,
        prompt=body.prompt,
        idempotency_key=body.idempotency_key,
    )
    return SessionOut.of(forked)


@router.get("/{session_id}/checkpoints")
def checkpoints(session_id: str, caller: CallerDep, service: SessionsDep) -> list[CheckpointOut]:
    """One per completed agent step, oldest first (the newest 100 are kept)."""
    kept = service.checkpoints(caller, _tenant(caller), session_id)
    return [CheckpointOut(**c.model_dump()) for c in kept]


@router.get("/{session_id}/children")
def children(session_id: str, caller: CallerDep, service: SessionsDep) -> SessionNode:
    """The session and its descendants: subtasks, follow-ups and forks, as a tree."""
    return SessionNode.of(service.children(caller, _tenant(caller), session_id))


@router.get("/{session_id}/tasks")
def tasks(session_id: str, caller: CallerDep, service: SessionsDep) -> list[TaskOut]:
    """A decomposed request's tasks (one per child session) with what each depends on."""
    return [
        TaskOut(
            id=view.task.id,
            title=view.task.title,
            status=view.task.status.value,
            status_reason=view.task.status_reason,
            session_id=view.task.session_id,
            depends_on=view.depends_on,
            required_capabilities=view.task.required_capabilities,
            estimate=view.task.estimate.model_dump() if view.task.estimate else None,
        )
        for view in service.tasks(caller, _tenant(caller), session_id)
    ]
