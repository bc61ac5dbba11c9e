"""Sessions of the current tenant: their rows, their append-only event history, checkpoints.

A decomposed request is a coordinating parent session whose children are linked to tasks (see
`domain.decomposed_requests`): the parent never runs on an agent, so it is never due, never counts
against the concurrency limit and is never adopted; a child is due only when every prerequisite
task's session COMPLETED and its parent is PENDING or RUNNING (a paused parent holds its
children, an ended one abandons those that have not started).

A state change is one conditional UPDATE (id, tenant, expected status and version) plus its event
row, in the caller's transaction: a stale or concurrent change matches no row, raises
`ConcurrentModification`, and the rollback leaves nothing written.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import date, datetime
from functools import cache
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    Date,
    Integer,
    Select,
    String,
    Update,
    bindparam,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from domain.checkpoint import MAX_CHECKPOINTS_KEPT, Checkpoint
from domain.clock import utcnow
from domain.errors import AlreadyExists, ConcurrentModification, NotFound
from domain.events import SessionEvent, StatusChanged
from domain.metrics import SessionMetrics
from domain.promotion import ModelPromotion
from domain.quota import CostCap
from domain.session import ACTIVE_STATES, Priority, Session, SessionStatus, SessionType
from domain.tenant import Tenant
from resources.database.repositories.base import TenantScopedRepository
from resources.database.repositories.tenants import tenant_from_row
from resources.database.repositories.webhooks import enqueue_deliveries
from resources.database.schema import (
    CheckpointRow,
    ModelPromotionRow,
    SessionEventRow,
    SessionRow,
    TaskDependencyRow,
    TaskRow,
    TenantRow,
    UsageRow,
)

CREATED_EVENT = "session.created"
STATUS_EVENT = "session.status_changed"
COORDINATING = (SessionStatus.PENDING.value, SessionStatus.RUNNING.value)
_PARENT = aliased(SessionRow, name="parent")
TAG_SCAN_BATCH = 500
LEASED_STATES = (SessionStatus.QUEUED, SessionStatus.RUNNING, SessionStatus.DEGRADED)
ENDED_STATES = (  # an attempt's end: what SessionMetrics.on_status gives a duration
    SessionStatus.COMPLETED,
    SessionStatus.PARTIALLY_COMPLETED,
    SessionStatus.FAILED,
    SessionStatus.TIMEOUT,
    SessionStatus.STOPPED,
    SessionStatus.CANCELLED,
    SessionStatus.ORPHANED,
)


@cache  # built once: aliased entities are costly to construct on every query
def _coordinates() -> ColumnElement[bool]:
    """The session is a coordinating parent: one of its children is linked to a task."""
    child = aliased(SessionRow)
    return exists(
        select(child.id)
        .join(TaskRow, TaskRow.session_id == child.id)
        .where(child.tenant_id == SessionRow.tenant_id, child.parent_id == SessionRow.id)
    )


@cache  # built once: aliased entities are costly to construct on every query
def _is_subtask() -> ColumnElement[bool]:
    """The session runs a task of a decomposition (a child of a coordinating parent)."""
    return exists(
        select(TaskRow.id).where(
            TaskRow.tenant_id == SessionRow.tenant_id,
            TaskRow.session_id == SessionRow.id,
            SessionRow.parent_id.is_not(None),
        )
    )


@cache  # built once: aliased entities are costly to construct on every query
def _waits_for_prerequisites() -> ColumnElement[bool]:
    """The session's task depends on a task whose session has not COMPLETED (yet)."""
    task, before, before_session = aliased(TaskRow), aliased(TaskRow), aliased(SessionRow)
    return exists(
        select(TaskDependencyRow.task_id)
        .join(task, task.id == TaskDependencyRow.task_id)
        .join(before, before.id == TaskDependencyRow.depends_on_id)
        .join(before_session, before_session.id == before.session_id)
        .where(
            task.tenant_id == SessionRow.tenant_id,
            task.session_id == SessionRow.id,
            before_session.status != SessionStatus.COMPLETED.value,
        )
    )


@cache  # built once: aliased entities are costly to construct on every query
def _parent_not_coordinating() -> ColumnElement[bool]:
    """The session is a subtask whose parent is neither PENDING nor RUNNING (held or ended)."""
    parent = aliased(SessionRow)
    return _is_subtask() & exists(
        select(parent.id).where(
            parent.tenant_id == SessionRow.tenant_id,
            parent.id == SessionRow.parent_id,
            parent.status.not_in(COORDINATING),
        )
    )


class SubmissionContext(NamedTuple):
    """What a submission decides on, read in one statement: the tenant, its tokens since the
    month began and its current promoted model (its promotion's id and the model as OpenCode
    names it). Not the idempotency key's session: the unique key finds it on insert (read
    first, its look-up was planned once per connection, and on a table new at the time
    PostgreSQL planned it to scan all the tenant's sessions)."""

    tenant: Tenant
    tokens_used: int
    promotion_id: str | None
    promoted_model: str | None


@cache  # built once, with bind parameters: each submission reuses the compiled statement
def _submission_context_query() -> Select[Any]:
    tenant = bindparam("tenant", type_=String)
    tokens = (
        select(
            func.coalesce(
                func.sum(UsageRow.tokens_in + UsageRow.tokens_out + UsageRow.fine_tuning_tokens), 0
            )
        )
        .where(UsageRow.tenant_id == tenant, UsageRow.day >= bindparam("since", type_=Date))
        .scalar_subquery()
    )

    def current_promotion(column: Any) -> Any:  # as `PromotionRepository.current` picks it
        return (
            select(column)
            .where(ModelPromotionRow.tenant_id == tenant, ModelPromotionRow.retired_at.is_(None))
            .order_by(ModelPromotionRow.promoted_at.desc(), ModelPromotionRow.id.desc())
            .limit(1)
            .scalar_subquery()
        )

    table = TenantRow.__table__.c
    return select(
        table.slug,
        table.name,
        table.active,
        table.max_concurrent_sessions,
        table.monthly_token_budget,
        table.created_at,
        tokens.label("tokens_used"),
        current_promotion(ModelPromotionRow.id).label("promotion_id"),
        current_promotion(ModelPromotionRow.model).label("promoted_model"),
    ).where(table.slug == tenant, table.deleted_at.is_(None))


@cache  # built once per shape: the waves look every second (building it cost ~40 % of a look)
def _due_pending_query(by_due_time: bool, by_max_duration: bool) -> Select[Any]:
    """`SessionRepository.due_pending`'s statement; its values come as parameters."""
    due_at = func.coalesce(SessionRow.next_attempt_at, SessionRow.created_at)
    now = bindparam("now", type_=SessionRow.next_attempt_at.type)
    query = (
        select(SessionRow)
        .where(
            SessionRow.tenant_id == bindparam("tenant", type_=String),
            SessionRow.status == SessionStatus.PENDING.value,
            SessionRow.unroutable_since.is_(None),
            or_(SessionRow.next_attempt_at.is_(None), SessionRow.next_attempt_at <= now),
            ~_coordinates(),
            ~_waits_for_prerequisites(),
            ~_parent_not_coordinating(),
        )
        .order_by(SessionRow.priority, SessionRow.id)
        .limit(bindparam("limit"))
    )
    if by_due_time:
        query = query.where(due_at <= bindparam("due_by", type_=SessionRow.created_at.type))
    if by_max_duration:
        query = query.where(
            SessionRow.max_duration_seconds
            <= bindparam("max_duration", type_=SessionRow.max_duration_seconds.type)
        )
    return query


@cache  # built once: every claim and every look at a full quota counts
def _count_active_query() -> Select[Any]:
    return select(func.count()).where(
        SessionRow.tenant_id == bindparam("tenant", type_=String),
        SessionRow.status.in_([s.value for s in ACTIVE_STATES]),
        ~_coordinates(),
    )


@cache  # built once: the waves look every second
def _expired_lease_query() -> Select[Any]:
    """`SessionRepository.with_expired_lease`'s statement; its values come as parameters."""
    now = bindparam("now", type_=SessionRow.lease_expires_at.type)
    return (
        select(SessionRow)
        .where(
            SessionRow.tenant_id == bindparam("tenant", type_=String),
            SessionRow.status.in_(bindparam("statuses", expanding=True)),
            or_(SessionRow.lease_expires_at.is_(None), SessionRow.lease_expires_at <= now),
            ~_coordinates(),
        )
        .order_by(SessionRow.id)
        .limit(bindparam("limit"))
    )


# Statements whose values come as parameters, so each is compiled once and then reused (an
# INSERT ... ON CONFLICT is never cached by SQLAlchemy: recompiled per submission, it cost more
# than the savepoint it would spare).
_INSERT_SESSION = insert(SessionRow.__table__)
_INSERT_EVENT = insert(SessionEventRow.__table__)
_INSERT_CHECKPOINT = insert(CheckpointRow.__table__)
_SESSIONS = SessionRow.__table__
_CHECKPOINTS = CheckpointRow.__table__
_IN_TENANT = (_SESSIONS.c.id == bindparam("session_id", type_=String)) & (
    _SESSIONS.c.tenant_id == bindparam("tenant", type_=String)
)
# The session's next `n` event seqs (its newest seq comes back); no row: not this tenant's.
_RESERVE_SEQS = (
    update(_SESSIONS)
    .where(_IN_TENANT)
    .values(last_event_seq=_SESSIONS.c.last_event_seq + bindparam("n", type_=Integer))
    .returning(_SESSIONS.c.last_event_seq)
)
_EVENTS = SessionEventRow.__table__
_EVENTS_OF_TYPES = (  # a wave asks, as each of its sessions ends, for follow-ups queued on it
    select(_EVENTS)
    .where(
        _EVENTS.c.tenant_id == bindparam("tenant", type_=String),
        _EVENTS.c.session_id == bindparam("session_id", type_=String),
        _EVENTS.c.event_type.in_(bindparam("event_types", expanding=True)),
    )
    .order_by(_EVENTS.c.seq)
)
_LAST_CHECKPOINT = select(func.max(_CHECKPOINTS.c.sequence)).where(
    _CHECKPOINTS.c.tenant_id == bindparam("tenant", type_=String),
    _CHECKPOINTS.c.session_id == bindparam("session_id", type_=String),
)
KEY_CONSTRAINT = "uq_sessions_tenant_id"  # (tenant_id, idempotency_key): migration 0001


def _is_key_conflict(error: IntegrityError) -> bool:
    """The unique (tenant, idempotency key) was violated (PostgreSQL names the constraint,
    SQLite the columns)."""
    diagnostics = getattr(error.orig, "diag", None)
    if diagnostics is not None:
        return getattr(diagnostics, "constraint_name", None) == KEY_CONSTRAINT
    return "sessions.idempotency_key" in str(error.orig)


def _to_domain(row: SessionRow, checkpoints: list[Checkpoint] | None = None) -> Session:
    return Session(
        id=row.id,
        tenant_id=row.tenant_id,
        title=row.title,
        description=row.description,
        session_type=SessionType(row.session_type),
        priority=Priority(row.priority),
        initial_prompt=row.initial_prompt,
        model=row.model,
        agent_config=row.agent_config,
        max_duration_seconds=row.max_duration_seconds,
        parent_id=row.parent_id,
        tags=row.tags,
        metadata=row.metadata_,
        metrics=SessionMetrics.model_validate(row.metrics),
        checkpoints=checkpoints or [],
        status=SessionStatus(row.status),
        status_reason=row.status_reason,
        retry_count=row.retry_count,
        max_retries=row.max_retries,
        next_attempt_at=row.next_attempt_at,
        result=row.result,
        error=row.error,
        idempotency_key=row.idempotency_key,
        agent_id=row.agent_id,
        agent_session_id=row.agent_session_id,
        required_capabilities=row.required_capabilities,
        cost_cap=CostCap.model_validate(row.cost_cap) if row.cost_cap else None,
        lease_owner=row.lease_owner,
        lease_expires_at=row.lease_expires_at,
        unroutable_since=row.unroutable_since,
        repository=row.repository,
        ref=row.ref,
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


MUTABLE_COLUMNS = (
    "status",
    "status_reason",
    "retry_count",
    "next_attempt_at",
    "metrics",
    "result",
    "error",
    "agent_id",
    "agent_session_id",
    "lease_owner",
    "lease_expires_at",
    "unroutable_since",
    "tags",
    "metadata",
    "updated_at",
)


def _mutable_columns(session: Session) -> dict[str, Any]:
    """What a transition or an update may change; identity and the request itself never change."""
    return {
        "status": session.status.value,
        "status_reason": session.status_reason,
        "retry_count": session.retry_count,
        "next_attempt_at": session.next_attempt_at,
        "metrics": session.metrics.model_dump(mode="json"),
        "result": session.result,
        "error": session.error,
        "agent_id": session.agent_id,
        "agent_session_id": session.agent_session_id,
        "lease_owner": session.lease_owner,
        "lease_expires_at": session.lease_expires_at,
        "unroutable_since": session.unroutable_since,
        "tags": session.tags,
        "metadata": session.metadata,
        "updated_at": session.updated_at,
    }


class NewEvent(NamedTuple):
    """An event to append (`SessionRepository.append_events`); `checkpoint`: a completed agent
    step, its data stored as the session's next checkpoint too."""

    event_type: str
    data: dict[str, Any]
    at: datetime
    reason: str = ""
    checkpoint: bool = False


def _event_columns(event: SessionEvent) -> dict[str, Any]:
    return {
        "tenant_id": event.tenant_id,
        "session_id": event.session_id,
        "seq": event.seq,
        "event_type": event.event_type,
        "old_status": event.old_status,
        "new_status": event.new_status,
        "reason": event.reason,
        "data": event.data,
        "created_at": event.at,
    }


@cache  # built once: every state change of every session runs one
def _conditional_update_statement(bump_seq: bool) -> Update:
    """The session's mutable columns (`new_<column>`), if it is still at `expected_status` and
    `expected_version`; its version bumped, and its event seq by `event_count` when a state
    change brings events. Its (new) newest seq comes back; no row: changed meanwhile, or not
    this tenant's."""
    values: dict[str, Any] = {
        name: bindparam(f"new_{name}", type_=_SESSIONS.c[name].type) for name in MUTABLE_COLUMNS
    }
    values["version"] = _SESSIONS.c.version + 1
    if bump_seq:
        values["last_event_seq"] = _SESSIONS.c.last_event_seq + bindparam(
            "event_count", type_=Integer
        )
    return (
        update(_SESSIONS)
        .where(
            _IN_TENANT,
            _SESSIONS.c.status == bindparam("expected_status", type_=String),
            _SESSIONS.c.version == bindparam("expected_version", type_=Integer),
        )
        .values(values)
        .returning(_SESSIONS.c.last_event_seq)
    )


def _event_to_domain(row: SessionEventRow | Row[Any]) -> SessionEvent:
    return SessionEvent(
        session_id=row.session_id,
        tenant_id=row.tenant_id,
        seq=row.seq,
        event_type=row.event_type,
        old_status=row.old_status,
        new_status=row.new_status,
        reason=row.reason,
        data=row.data,
        at=row.created_at,
    )


def created_event(session: Session) -> SessionEvent:
    """The `session.created` event `SessionRepository.add` inserts, without reading it back."""
    return SessionEvent(
        session_id=session.id,
        tenant_id=session.tenant_id,
        seq=1,
        event_type=CREATED_EVENT,
        old_status=None,
        new_status=session.status.value,
        reason="",
        data={},
        at=session.created_at,
    )


class SessionRepository(TenantScopedRepository):
    kind = "session"

    def add(self, session: Session) -> Session:
        """Insert a new session and its first event (`session.created`, seq 1); a key already
        used by one of the tenant's sessions is `AlreadyExists`, after which the transaction is
        to be rolled back (no savepoint per insert: `SessionService.submit` looks the key's
        session up in a new transaction)."""
        tenant = self._owned(session.tenant_id)
        self._require_own(SessionRow, session.parent_id, self.kind)
        columns = _mutable_columns(session)
        columns.update(
            id=session.id,
            tenant_id=tenant,
            title=session.title,
            description=session.description,
            session_type=session.session_type.value,
            priority=int(session.priority),
            initial_prompt=session.initial_prompt,
            model=session.model,
            agent_config=session.agent_config,
            max_duration_seconds=session.max_duration_seconds,
            parent_id=session.parent_id,
            max_retries=session.max_retries,
            idempotency_key=session.idempotency_key,
            required_capabilities=session.required_capabilities,
            cost_cap=session.cost_cap.model_dump() if session.cost_cap else None,
            repository=session.repository,
            ref=session.ref,
            version=session.version,
            last_event_seq=1,
            created_at=session.created_at,
        )
        try:
            self._connection().execute(_INSERT_SESSION, columns)
        except IntegrityError as error:
            if session.idempotency_key and _is_key_conflict(error):
                raise AlreadyExists("session idempotency key", session.idempotency_key) from None
            raise
        created = self._event(
            session.id, 1, CREATED_EVENT, None, session.status.value, "", {}, session.created_at
        )
        self._connection().execute(_INSERT_EVENT, _event_columns(created))
        return session

    def submission_context(self, since: date) -> SubmissionContext:
        """The current tenant and what its next submission checks, in one statement: tokens
        used from `since` on, its current promotion. `NotFound` for a deleted or missing
        tenant."""
        tenant_id = self.tenant_id
        row = (
            self._connection()
            .execute(
                _submission_context_query(),
                {"tenant": tenant_id, "since": since},
            )
            .first()
        )
        if row is None:
            raise NotFound("tenant", tenant_id)
        tenant = tenant_from_row(row)
        promoted_model = None
        if row.promotion_id is not None:
            promoted_model = ModelPromotion(
                id=row.promotion_id, tenant_id=tenant_id, model=row.promoted_model
            ).opencode_model
        return SubmissionContext(
            tenant=tenant,
            tokens_used=int(row.tokens_used or 0),
            promotion_id=row.promotion_id,
            promoted_model=promoted_model,
        )

    def _row(self, session_id: str) -> SessionRow:
        row = self._session.scalars(
            select(SessionRow).where(
                SessionRow.tenant_id == self.tenant_id, SessionRow.id == session_id
            )
        ).first()
        if row is None:
            raise NotFound(self.kind, session_id)
        return row

    def get(self, session_id: str) -> Session:
        row = self._row(session_id)
        return _to_domain(row, self.checkpoints(session_id))

    def find_by_idempotency_key(self, key: str) -> Session | None:
        """The session submitted earlier with this key, or None when there is none."""
        row = self._session.scalars(
            select(SessionRow).where(
                SessionRow.tenant_id == self.tenant_id, SessionRow.idempotency_key == key
            )
        ).first()
        return _to_domain(row) if row else None

    def list(
        self,
        statuses: Collection[SessionStatus] | None = None,
        parent_id: str | None = None,
        limit: int = 100,
        before_id: str | None = None,
        session_types: Collection[SessionType] | None = None,
        priorities: Collection[Priority] | None = None,
        tag: str | None = None,
    ) -> list[Session]:
        """Newest first (ids sort by creation time); page with `before_id`. No checkpoints.

        `tag` is matched on the decoded tags (JSON is queried differently by each database),
        reading newest first in batches until `limit` sessions carry it.
        """
        query = select(SessionRow).where(SessionRow.tenant_id == self.tenant_id)
        if statuses:
            query = query.where(SessionRow.status.in_([s.value for s in statuses]))
        if session_types:
            query = query.where(SessionRow.session_type.in_([t.value for t in session_types]))
        if priorities:
            query = query.where(SessionRow.priority.in_([int(p) for p in priorities]))
        if parent_id is not None:
            query = query.where(SessionRow.parent_id == parent_id)
        if tag is None:
            if before_id is not None:
                query = query.where(SessionRow.id < before_id)
            query = query.order_by(SessionRow.id.desc()).limit(limit)
            return [_to_domain(row) for row in self._session.scalars(query)]
        found: list[Session] = []
        while len(found) < limit:
            page = query.order_by(SessionRow.id.desc()).limit(TAG_SCAN_BATCH)
            if before_id is not None:
                page = page.where(SessionRow.id < before_id)
            rows = list(self._session.scalars(page))
            found += [_to_domain(row) for row in rows if tag in (row.tags or [])]
            if len(rows) < TAG_SCAN_BATCH:
                break
            before_id = rows[-1].id
        return found[:limit]

    def statistics(self) -> dict[str, dict[str, int]]:
        """How many of the tenant's sessions are in each status, of each type and priority."""
        counts: dict[str, dict[str, int]] = {}
        for name, column in (
            ("by_status", SessionRow.status),
            ("by_type", SessionRow.session_type),
            ("by_priority", SessionRow.priority),
        ):
            query = (
                select(column, func.count())
                .where(SessionRow.tenant_id == self.tenant_id)
                .group_by(column)
            )
            counts[name] = {
                (Priority(key).name if name == "by_priority" else str(key)): int(count)
                for key, count in self._session.execute(query)
            }
        return counts

    def events_of_types(self, session_id: str, event_types: Collection[str]) -> list[SessionEvent]:
        """The session's events of these types, oldest first (follow-up messages, ...)."""
        rows = self._connection().execute(
            _EVENTS_OF_TYPES,
            {"tenant": self.tenant_id, "session_id": session_id, "event_types": list(event_types)},
        )
        return [_event_to_domain(row) for row in rows]

    def count_active(self) -> int:
        """Sessions holding a concurrency slot (a coordinating parent holds none)."""
        return int(self._session.scalar(_count_active_query(), {"tenant": self.tenant_id}) or 0)

    def count_by_status(self) -> dict[str, int]:
        """The tenant's sessions per status (monitoring's figures)."""
        query = (
            select(SessionRow.status, func.count())
            .where(SessionRow.tenant_id == self.tenant_id)
            .group_by(SessionRow.status)
        )
        return {status: int(count) for status, count in self._session.execute(query)}

    def recent_durations(self, since: datetime, limit: int = 1000) -> list[float]:
        """How long the sessions that ended since `since` ran (the newest `limit` of them)."""
        ended = [s.value for s in ENDED_STATES]
        query = (
            select(SessionRow.metrics)
            .where(
                SessionRow.tenant_id == self.tenant_id,
                SessionRow.status.in_(ended),
                SessionRow.updated_at >= since,
            )
            .order_by(SessionRow.updated_at.desc())
            .limit(limit)
        )
        durations = []
        for metrics in self._session.scalars(query):
            seconds = SessionMetrics.model_validate(metrics or {}).duration_seconds
            if seconds is not None:
                durations.append(seconds)
        return durations

    def active_by_agent(self) -> dict[str, int]:
        """Sessions in flight per agent id (routing's load figure)."""
        query = (
            select(SessionRow.agent_id, func.count())
            .where(
                SessionRow.tenant_id == self.tenant_id,
                SessionRow.agent_id.is_not(None),
                SessionRow.status.in_([s.value for s in ACTIVE_STATES]),
            )
            .group_by(SessionRow.agent_id)
        )
        return {agent_id: int(count) for agent_id, count in self._session.execute(query)}

    def due_pending(
        self,
        now: datetime,
        limit: int,
        *,
        due_by: datetime | None = None,
        max_duration_seconds: float | None = None,
    ) -> list[Session]:
        """PENDING sessions whose backoff has passed, most urgent first (priority, then age).

        Not coordinating parents, nor sessions waiting for an agent that offers what they need
        (`unroutable`), nor subtasks whose prerequisites have not all COMPLETED or whose parent
        is not PENDING/RUNNING. `due_by`: only those due (submitted, or their
        retry's backoff over) by then; `max_duration_seconds`: only those allowed no longer.
        """
        query = _due_pending_query(due_by is not None, max_duration_seconds is not None)
        parameters = {
            "tenant": self.tenant_id,
            "now": now,
            "limit": limit,
            "due_by": due_by,
            "max_duration": max_duration_seconds,
        }
        return [_to_domain(row) for row in self._session.scalars(query, parameters)]

    def unroutable(self, limit: int = 100) -> list[Session]:
        """PENDING sessions waiting for an agent that offers their capabilities, longest first."""
        query = (
            select(SessionRow)
            .where(
                SessionRow.tenant_id == self.tenant_id,
                SessionRow.unroutable_since.is_not(None),
                SessionRow.status == SessionStatus.PENDING.value,
            )
            .order_by(SessionRow.unroutable_since, SessionRow.id)
            .limit(limit)
        )
        return [_to_domain(row) for row in self._session.scalars(query)]

    def coordinators(self, statuses: Collection[SessionStatus], limit: int = 100) -> list[Session]:
        """Coordinating parents (of a decomposed request) in `statuses`, oldest first."""
        query = (
            select(SessionRow)
            .where(
                SessionRow.tenant_id == self.tenant_id,
                SessionRow.status.in_([s.value for s in statuses]),
                _coordinates(),
            )
            .order_by(SessionRow.id)
            .limit(limit)
        )
        return [_to_domain(row) for row in self._session.scalars(query)]

    def abandoned_subtasks(self, limit: int = 100) -> list[Session]:
        """PENDING subtask sessions whose parent ended: they can never start."""
        parent = _PARENT
        query = (
            select(SessionRow)
            .join(parent, parent.id == SessionRow.parent_id)
            .where(
                SessionRow.tenant_id == self.tenant_id,
                parent.tenant_id == self.tenant_id,
                SessionRow.status == SessionStatus.PENDING.value,
                parent.status.not_in((*COORDINATING, SessionStatus.PAUSED.value)),
                _is_subtask(),
            )
            .order_by(SessionRow.id)
            .limit(limit)
        )
        return [_to_domain(row) for row in self._session.scalars(query)]

    def leased_by(self, owner: str) -> list[Session]:
        """The sessions a supervisor (wave) holds, whatever their state now."""
        query = select(SessionRow).where(
            SessionRow.tenant_id == self.tenant_id, SessionRow.lease_owner == owner
        )
        return [_to_domain(row) for row in self._session.scalars(query.order_by(SessionRow.id))]

    def renew_leases(self, owner: str, until: datetime) -> set[str]:
        """Extend every lease `owner` holds on a session it still supervises; the ids renewed.

        One statement for a whole wave. The version is left alone: a lease is not a state
        change, and a writer holding the session (the owner itself, an operator's cancel) must
        not fail its version check because of it. A session missing from the answer was taken
        over, or left the supervised states.
        """
        statement = (
            update(SessionRow)
            .where(
                SessionRow.tenant_id == self.tenant_id,
                SessionRow.lease_owner == owner,
                SessionRow.status.in_([s.value for s in LEASED_STATES]),
            )
            .values(lease_expires_at=until)
            .returning(SessionRow.id)
            .execution_options(synchronize_session=False)
        )
        return set(self._session.scalars(statement))

    def with_expired_lease(
        self, now: datetime, statuses: Collection[SessionStatus], limit: int = 1000
    ) -> list[Session]:
        """Sessions in `statuses` whose supervisor is gone (lease missing or run out).

        Coordinating parents never have one (they run on no agent): they are left out.
        """
        parameters = {
            "tenant": self.tenant_id,
            "statuses": [s.value for s in statuses],
            "now": now,
            "limit": limit,
        }
        return [
            _to_domain(row) for row in self._session.scalars(_expired_lease_query(), parameters)
        ]

    def save_transition(self, session: Session, event: StatusChanged) -> SessionEvent:
        """Persist `session` after `event`, if the row is still at event.old_status and
        session.version; bumps the version and appends the event row."""
        return self.save_transition_after(session, event, ())[-1]

    def save_transition_after(
        self, session: Session, event: StatusChanged, observed: Sequence[NewEvent]
    ) -> list[SessionEvent]:
        """`save_transition`, the session's `observed` events appended before its own, in the
        same UPDATE (their seqs reserved with its) and the same INSERT; what was written, in
        order. ConcurrentModification: nothing is (the caller's transaction rolls back)."""
        expected_version = session.version
        last_seq = self._conditional_update(
            session,
            expected_status=event.old_status,
            expected_version=expected_version,
            event_count=len(observed) + 1,
        )
        session.version = expected_version + 1
        enqueue_deliveries(self._session, self.tenant_id, event)  # webhooks' outbox, same commit
        written = self._numbered(session.id, last_seq - len(observed), observed)
        written.append(
            self._event(
                session.id,
                last_seq,
                STATUS_EVENT,
                event.old_status,
                event.new_status,
                event.reason,
                event.data,
                event.at,
            )
        )
        self._connection().execute(_INSERT_EVENT, [_event_columns(e) for e in written])
        return written

    def save(self, session: Session) -> None:
        """Persist non-status changes (metrics, result, agent) under the same version check."""
        expected_version = session.version
        self._conditional_update(
            session,
            expected_status=session.status.value,
            expected_version=expected_version,
        )
        session.version = expected_version + 1

    def _conditional_update(
        self,
        session: Session,
        expected_status: str,
        expected_version: int,
        event_count: int = 0,
    ) -> int:
        parameters = {f"new_{name}": value for name, value in _mutable_columns(session).items()}
        parameters.update(
            session_id=session.id,
            tenant=self.tenant_id,
            expected_status=expected_status,
            expected_version=expected_version,
        )
        if event_count:
            parameters["event_count"] = event_count
        seq = (
            self._connection()
            .execute(_conditional_update_statement(event_count > 0), parameters)
            .scalar_one_or_none()
        )
        if seq is None:
            self._row(session.id)  # NotFound when it is not this tenant's
            raise ConcurrentModification(self.kind, session.id, expected_status, expected_version)
        return int(seq)

    def append_event(
        self,
        session_id: str,
        event_type: str,
        data: dict[str, Any],
        reason: str = "",
        at: datetime | None = None,
    ) -> SessionEvent:
        """Record a non-transition event (agent message, tool call, diff, cost), next seq.

        `at`: when it happened, if it is written later (a wave batches them); default now."""
        [event] = self.append_events(
            session_id, [NewEvent(event_type, data, at or utcnow(), reason)]
        )
        return event

    def append_events(self, session_id: str, events: Sequence[NewEvent]) -> list[SessionEvent]:
        """Append `events` after the session's newest, in order: one UPDATE reserves their seqs
        and one INSERT writes them, however many they are (a wave writes several per session).
        A `checkpoint` event's data is also stored as the session's next checkpoint, whose
        number its event carries (`checkpoint`). NotFound: not a session of this tenant."""
        tenant = self.tenant_id
        if not events:
            return []
        connection = self._connection()
        found = connection.execute(
            _RESERVE_SEQS, {"session_id": session_id, "tenant": tenant, "n": len(events)}
        ).first()
        if found is None:
            raise NotFound(self.kind, session_id)
        written = self._numbered(session_id, int(found[0]) - len(events) + 1, events)
        connection.execute(_INSERT_EVENT, [_event_columns(event) for event in written])
        return written

    def _numbered(
        self, session_id: str, first_seq: int, events: Sequence[NewEvent]
    ) -> list[SessionEvent]:
        """`events` as the session's, from `first_seq` on (reserved), their checkpoints stored."""
        numbered = self._checkpoints_of(session_id, events)
        return [
            self._event(
                session_id,
                first_seq + offset,
                event.event_type,
                None,
                None,
                event.reason,
                numbered.get(offset, event.data),
                event.at,
            )
            for offset, event in enumerate(events)
        ]

    def _checkpoints_of(
        self, session_id: str, events: Sequence[NewEvent]
    ) -> dict[int, dict[str, Any]]:
        """Store the checkpoints of `events` (the session's seqs are reserved: it exists); the
        data of their events by position, with each checkpoint's number."""
        steps = [(offset, e) for offset, e in enumerate(events) if e.checkpoint]
        if not steps:
            return {}
        first = self._store_checkpoints(session_id, [(e.data, e.at) for _, e in steps])
        return {
            offset: {**event.data, "checkpoint": number}
            for number, (offset, event) in enumerate(steps, start=first)
        }

    def _store_checkpoints(
        self, session_id: str, steps: list[tuple[dict[str, Any], datetime]]
    ) -> int:
        """Store each step's data as the next checkpoint (one wave follows a session at a time,
        so one writer numbers them); the first one's number. The oldest beyond
        `MAX_CHECKPOINTS_KEPT` are dropped."""
        connection = self._connection()
        last = connection.execute(
            _LAST_CHECKPOINT, {"session_id": session_id, "tenant": self.tenant_id}
        ).scalar()
        first = (last or 0) + 1
        connection.execute(
            _INSERT_CHECKPOINT,
            [
                {
                    "session_id": session_id,
                    "sequence": number,
                    "tenant_id": self.tenant_id,
                    "data": data,
                    "created_at": at,
                }
                for number, (data, at) in enumerate(steps, start=first)
            ],
        )
        self._drop_checkpoints_before(session_id, first + len(steps) - MAX_CHECKPOINTS_KEPT)
        return first

    def _event(
        self,
        session_id: str,
        seq: int,
        event_type: str,
        old_status: str | None,
        new_status: str | None,
        reason: str,
        data: dict[str, Any],
        at: datetime,
    ) -> SessionEvent:
        return SessionEvent(
            session_id=session_id,
            tenant_id=self.tenant_id,
            seq=seq,
            event_type=event_type,
            old_status=old_status,
            new_status=new_status,
            reason=reason,
            data=data,
            at=at,
        )

    def events(self, session_id: str, after_seq: int = 0, limit: int = 1000) -> list[SessionEvent]:
        self._row(session_id)
        query = (
            select(SessionEventRow)
            .where(
                SessionEventRow.tenant_id == self.tenant_id,
                SessionEventRow.session_id == session_id,
                SessionEventRow.seq > after_seq,
            )
            .order_by(SessionEventRow.seq)
            .limit(limit)
        )
        return [_event_to_domain(row) for row in self._session.scalars(query)]

    def latest_event_seq(self, session_id: str) -> int:
        """The seq of the session's newest event (0 when it has none)."""
        self._row(session_id)
        return int(
            self._session.scalar(
                select(func.coalesce(func.max(SessionEventRow.seq), 0)).where(
                    SessionEventRow.tenant_id == self.tenant_id,
                    SessionEventRow.session_id == session_id,
                )
            )
        )

    def tenant_events(self, after_id: int = 0, limit: int = 1000) -> list[tuple[int, SessionEvent]]:
        """The tenant's events of every session after row id `after_id`, in id order (which is
        each session's seq order), with their row ids: the tenant-wide live stream's record."""
        query = (
            select(SessionEventRow)
            .where(SessionEventRow.tenant_id == self.tenant_id, SessionEventRow.id > after_id)
            .order_by(SessionEventRow.id)
            .limit(limit)
        )
        return [(row.id, _event_to_domain(row)) for row in self._session.scalars(query)]

    def newest_event_id(self) -> int:
        """The row id of the tenant's newest event (0 when it has none)."""
        return int(
            self._session.scalar(
                select(func.coalesce(func.max(SessionEventRow.id), 0)).where(
                    SessionEventRow.tenant_id == self.tenant_id
                )
            )
        )

    def seqs_up_to(self, session_ids: Collection[str], event_id: int) -> dict[str, int]:
        """Per session, the seq of its newest event with a row id up to `event_id` (0: none)."""
        if not session_ids:
            return {}
        query = (
            select(SessionEventRow.session_id, func.max(SessionEventRow.seq))
            .where(
                SessionEventRow.tenant_id == self.tenant_id,
                SessionEventRow.session_id.in_(list(session_ids)),
                SessionEventRow.id <= event_id,
            )
            .group_by(SessionEventRow.session_id)
        )
        found = {session_id: int(seq) for session_id, seq in self._session.execute(query)}
        return {session_id: found.get(session_id, 0) for session_id in session_ids}

    def add_checkpoint(self, session_id: str, checkpoint: Checkpoint) -> Checkpoint:
        """Store checkpoint n and drop those older than the newest `MAX_CHECKPOINTS_KEPT`."""
        self._row(session_id)
        self._connection().execute(
            _INSERT_CHECKPOINT,
            {
                "session_id": session_id,
                "sequence": checkpoint.sequence,
                "tenant_id": self.tenant_id,
                "data": checkpoint.data,
                "created_at": checkpoint.created_at,
            },
        )
        self._drop_checkpoints_before(session_id, checkpoint.sequence - MAX_CHECKPOINTS_KEPT + 1)
        return checkpoint

    def add_next_checkpoint(
        self, session_id: str, data: dict[str, Any], at: datetime
    ) -> Checkpoint:
        """Store the checkpoint after the newest one (a step's event brings its own through
        `append_events`)."""
        self._row(session_id)
        return Checkpoint(
            sequence=self._store_checkpoints(session_id, [(data, at)]), data=data, created_at=at
        )

    def _drop_checkpoints_before(self, session_id: str, sequence: int) -> None:
        if sequence <= 1:  # none to drop
            return
        self._session.execute(
            delete(CheckpointRow).where(
                CheckpointRow.tenant_id == self.tenant_id,
                CheckpointRow.session_id == session_id,
                CheckpointRow.sequence < sequence,
            )
        )

    def checkpoints(self, session_id: str) -> list[Checkpoint]:
        query = (
            select(CheckpointRow)
            .where(
                CheckpointRow.tenant_id == self.tenant_id, CheckpointRow.session_id == session_id
            )
            .order_by(CheckpointRow.sequence)
        )
        return [
            Checkpoint(sequence=row.sequence, data=row.data, created_at=row.created_at)
            for row in self._session.scalars(query)
        ]
