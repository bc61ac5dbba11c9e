"""Submitting and steering coding sessions: the one path the CLI, sensors and API share.

Quotas are enforced where work starts: the monthly token budget at submit (refused with a clear
error), the concurrency limit at claim time (extra sessions simply wait in PENDING).

A request with subtasks (given, or found by the rule-based decomposer) becomes a coordinating
parent and one child session per subtask, written in one transaction after the subtask graph is
checked (see `domain.decomposed_requests`); cancelling the parent cancels or stops its children.

What a tenant's caller reaches takes its `Caller`: a VIEWER reads, a MEMBER submits and steers
any of the tenant's sessions (follow-up messages and forks too), a CRITICAL session takes a LEAD.
The dispatch and retry methods (`claim*`, `lease_unsupervised`, `release_leases`, `retry_due`,
`deliver_queued`) are the control plane's own: sensors and waves call them, the API never does.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import Field

from domain.caller import Caller
from domain.checkpoint import Checkpoint
from domain.clock import utcnow
from domain.decomposed_requests import plan_decomposition
from domain.decomposition import SubtaskSpec, decompose
from domain.domain_model import ValueObject
from domain.errors import (
    ConcurrentModification,
    DomainError,
    IdempotencyKeyReused,
    InactiveTenant,
    InvalidInput,
    InvalidTransition,
    NotFound,
)
from domain.events import SessionEvent
from domain.follow_up import (
    DELIVERED_EVENT,
    FOLLOW_UP_EVENTS,
    MESSAGE_EVENT,
    checked_message,
    follow_up_prompt,
    follow_up_title,
    fork_prompt,
    new_message_id,
    undelivered,
)
from domain.quota import CostCap, check_token_budget, free_session_slots, month_start
from domain.retry import RetryPolicy
from domain.session import (
    RETRYABLE_STATES,
    TITLE_MAX,
    Priority,
    Session,
    SessionStatus,
    SessionType,
)
from domain.task import Task
from domain.tenant import Role
from resources.database import Database, UnitOfWork, tenant_scope, unit_of_work
from resources.database.repositories.sessions import LEASED_STATES, created_event
from services.agent_control import AgentControl
from services.request_settlement import sync_task
from services.session_checkout import check_submitted_permission, resolve_checkout
from services.unroutable import (
    MAX_MARKING_ROUNDS,
    offered_capabilities,
    released_if_unroutable,
    set_aside_if_unroutable,
)
from services.wave_trigger import WaveTrigger

logger = logging.getLogger(__name__)
EventSink = Callable[[SessionEvent], None]
OwnerNaming = Callable[[list[Session]], str]
CANCELLABLE_BEFORE_START = frozenset({SessionStatus.PENDING, SessionStatus.QUEUED})
STOPPABLE = frozenset({SessionStatus.RUNNING, SessionStatus.DEGRADED, SessionStatus.PAUSED})
_S = SessionStatus
MAX_TREE_NODES = 1000
REQUEST_DIGEST = "request_digest"  # metadata of a session submitted with an idempotency key


@dataclass(frozen=True)
class Claim:
    """Sessions leased together to one owner (a wave); empty when there was nothing to take."""

    owner: str
    sessions: list[Session]


class SubmitSession(ValueObject):
    """What a tenant asks for; validated again, field by field, when the Session is built."""

    title: str
    prompt: str
    description: str = ""
    session_type: SessionType = SessionType.EXECUTION
    priority: Priority = Priority.MEDIUM
    model: str | None = None
    agent_config: dict[str, Any] = Field(default_factory=dict)
    max_duration_seconds: int = 3600
    max_retries: int = 3
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str | None = None
    required_capabilities: list[str] = Field(default_factory=list)
    cost_cap: CostCap | None = None
    parent_id: str | None = None
    repository: str | None = None  # a code repository of the tenant's (`indorch repo add`)
    ref: str | None = None  # where its worktree starts; default: the repository's default ref
    subtasks: list[SubtaskSpec] = Field(default_factory=list)
    decompose: bool = False  # split the prompt with the rule-based decomposer

    def digest(self) -> str:
        """What a reused idempotency key is checked against: the whole request but the key."""
        body = self.model_dump(mode="json", exclude={"idempotency_key"})
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()

    def planned_subtasks(self) -> tuple[list[SubtaskSpec], str]:
        """The subtasks to run (none: one ordinary session) and where they come from."""
        if self.subtasks and self.decompose:
            raise InvalidInput("subtasks", "give subtasks or ask to decompose, not both")
        if self.subtasks:
            return list(self.subtasks), "request"
        if self.decompose:
            return decompose(self.prompt), "decomposer"
        return [], ""


class FollowUp(ValueObject):
    """Where a follow-up message went: queued on the session, or a new child session."""

    message_id: str
    session_id: str
    delivery: Literal["queued", "session"]


class SessionTree(ValueObject):
    session: Session
    children: list[SessionTree] = Field(default_factory=list)


class SubtaskView(ValueObject):
    task: Task
    depends_on: list[str] = Field(default_factory=list)


class SessionService:
    def __init__(
        self,
        database: Database,
        agent_control: AgentControl | None = None,
        publish: EventSink | None = None,
        clock: Callable[[], datetime] = utcnow,
        retry_base_seconds: float | None = None,
        wave_trigger: WaveTrigger | None = None,
    ) -> None:
        self._database = database
        self._wave_trigger = wave_trigger
        self._retry_base_seconds = retry_base_seconds
        self._agent_control = agent_control
        self._publish = publish or (lambda event: None)
        self._clock = clock

    # -- submit -------------------------------------------------------------------------------

    def submit(self, caller: Caller, tenant_id: str, request: SubmitSession) -> Session:
        """A new PENDING session; the same idempotency key twice gives the same session.
        A MEMBER submits; CRITICAL goes ahead of the tenant's other work, so it takes a LEAD."""
        caller.require_tenant(tenant_id)
        caller.require(Role.MEMBER, "submit a session")
        if request.priority is Priority.CRITICAL:
            caller.require(Role.LEAD, "submit a CRITICAL session")
        try:
            return self._submit(tenant_id, request)
        except InactiveTenant:
            raise
        except DomainError:
            # The key used already (its insert conflicted), or the request is refused now (over
            # the token budget since, say): a replay is answered with the key's session.
            existing = self._find_by_key(tenant_id, request.idempotency_key)
            if existing is None:
                raise
            return _same_request(existing, request)

    def _submit(self, tenant_id: str, request: SubmitSession) -> Session:
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            # One statement: the tenant, its tokens this month, its promotion.
            context = uow.sessions.submission_context(month_start(self._clock()))
            if not context.tenant.active:
                raise InactiveTenant(tenant_id)
            if request.parent_id:
                uow.sessions.get(request.parent_id)  # the tenant's own session, else NotFound
            check_token_budget(context.tenant, context.tokens_used)
            check_submitted_permission(request.agent_config)
            repository, ref = resolve_checkout(uow, request.repository, request.ref)
            subtasks, source = request.planned_subtasks()
            metadata = request.metadata
            if subtasks:
                metadata = {**metadata, "decomposition": {"subtasks": len(subtasks), "by": source}}
            if request.idempotency_key:
                metadata = {**metadata, REQUEST_DIGEST: request.digest()}
            model = request.model
            if not model and context.promotion_id is not None:
                # The tenant's promoted model, unless the submitter chose one.
                model = context.promoted_model
                metadata = {**metadata, "model_promotion": context.promotion_id}
            session = Session(
                tenant_id=tenant_id,
                title=request.title,
                initial_prompt=request.prompt,
                description=request.description,
                session_type=request.session_type,
                priority=request.priority,
                model=model,
                agent_config=request.agent_config,
                max_duration_seconds=request.max_duration_seconds,
                max_retries=0 if subtasks else request.max_retries,  # retries are the children's
                tags=request.tags,
                metadata=metadata,
                idempotency_key=request.idempotency_key,
                required_capabilities=request.required_capabilities,
                cost_cap=request.cost_cap,
                parent_id=request.parent_id,
                repository=repository,
                ref=ref,
                created_at=self._clock(),
                updated_at=self._clock(),
            )
            plan = None
            if subtasks:
                plan = plan_decomposition(session, subtasks, request.max_retries, self._clock())
            uow.sessions.add(session)
            created = [created_event(session)]
            if plan is not None:
                for child, task in zip(plan.children, plan.tasks, strict=True):
                    uow.sessions.add(child)
                    uow.tasks.add(task)
                    created.append(created_event(child))
                for dependency in plan.dependencies:
                    uow.tasks.add_dependency(dependency)
        for event in created:
            self._publish(event)
        longest = max([session, *(plan.children if plan else [])], key=_max_duration)
        self._tell_wave_trigger(tenant_id, longest.max_duration_seconds)
        return session

    def _tell_wave_trigger(self, tenant_id: str, longest_session_seconds: int) -> None:
        """New PENDING work is committed: the trigger may launch the tenant's wave now rather
        than at the dispatch sensor's next tick. It returns at once; whatever it does, the
        submit has succeeded (the sensor is the safety net)."""
        if self._wave_trigger is None:
            return
        try:
            self._wave_trigger.new_work(tenant_id, longest_session_seconds)
        except Exception as error:
            logger.warning("tenant %s: the wave trigger failed: %r", tenant_id, error)

    def _find_by_key(self, tenant_id: str, key: str | None) -> Session | None:
        if not key:
            return None
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            return uow.sessions.find_by_idempotency_key(key)

    # -- read ---------------------------------------------------------------------------------

    def get(self, caller: Caller, tenant_id: str, session_id: str) -> Session:
        """NotFound for another tenant's session: its existence never shows."""
        _require_reader(caller, tenant_id)
        return self._get(tenant_id, session_id)

    def _get(self, tenant_id: str, session_id: str) -> Session:
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            return uow.sessions.get(session_id)

    def checkpoints(self, caller: Caller, tenant_id: str, session_id: str) -> list[Checkpoint]:
        """The session's checkpoints, oldest first (NotFound for another tenant's session)."""
        _require_reader(caller, tenant_id)
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            uow.sessions.get(session_id)
            return uow.sessions.checkpoints(session_id)

    def list(self, caller: Caller, tenant_id: str, **filters: Any) -> list[Session]:
        """Newest first; filters and paging as `SessionRepository.list` takes them."""
        _require_reader(caller, tenant_id)
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            return uow.sessions.list(**filters)

    def events(
        self, caller: Caller, tenant_id: str, session_id: str, after_seq: int = 0
    ) -> list[SessionEvent]:
        _require_reader(caller, tenant_id)
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            return uow.sessions.events(session_id, after_seq=after_seq)

    # -- steer --------------------------------------------------------------------------------

    def cancel(
        self, caller: Caller, tenant_id: str, session_id: str, reason: str = "cancelled"
    ) -> Session:
        """Before it starts: CANCELLED. Running or paused: aborted on the agent, STOPPED."""
        _require_steerer(caller, tenant_id, "cancel a session")
        return self._cancel(tenant_id, session_id, reason)

    def _cancel(self, tenant_id: str, session_id: str, reason: str) -> Session:
        session = self._get(tenant_id, session_id)
        session.require_status(CANCELLABLE_BEFORE_START | STOPPABLE, "cancelled", _S.CANCELLED)
        if session.status in CANCELLABLE_BEFORE_START | {SessionStatus.PAUSED}:
            cancelled = self._transition(tenant_id, session, SessionStatus.CANCELLED, reason)
            self._end_subtasks(tenant_id, cancelled)
            return cancelled
        return self._stop(tenant_id, session_id, reason)

    def stop(
        self, caller: Caller, tenant_id: str, session_id: str, reason: str = "stopped"
    ) -> Session:
        """Running, degraded or paused: STOPPED for good, aborted on the agent."""
        _require_steerer(caller, tenant_id, "stop a session")
        return self._stop(tenant_id, session_id, reason)

    def _stop(self, tenant_id: str, session_id: str, reason: str) -> Session:
        session = self._get(tenant_id, session_id)
        session.require_status(STOPPABLE, "stopped", _S.STOPPED)
        stopped = self._transition(tenant_id, session, SessionStatus.STOPPED, reason)
        self._abort_on_agent(tenant_id, stopped)
        self._end_subtasks(tenant_id, stopped)
        return stopped

    def _end_subtasks(self, tenant_id: str, parent: Session) -> None:
        """A coordinating parent ended: cancel its children that did not start, stop the others.

        One that changes meanwhile (or awaits a retry) is left: the dispatcher never starts a
        child of an ended parent, and the retry sensor cancels it once it is PENDING again.
        """
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            children = [
                child
                for child in uow.sessions.list(parent_id=parent.id, limit=1000)
                if uow.tasks.list(session_id=child.id)  # a subtask, not a mere follow-up
            ]
        why = f"parent {parent.id} {parent.status.value}"
        for child in children:
            try:
                if child.status in CANCELLABLE_BEFORE_START | {SessionStatus.PAUSED}:
                    self._cancel(tenant_id, child.id, why)
                elif child.status in STOPPABLE:
                    self._stop(tenant_id, child.id, why)
            except (ConcurrentModification, InvalidTransition) as error:
                logger.info("subtask %s of %s left as it is: %s", child.id, parent.id, error)
        try:
            with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
                for child in children:
                    current = uow.sessions.get(child.id)
                    for task in uow.tasks.list(session_id=child.id):
                        sync_task(uow, task, current, False, self._clock())
        except ConcurrentModification as error:  # the retry sensor's pass catches up
            logger.info("tasks of %s not updated: %s", parent.id, error)

    def pause(
        self, caller: Caller, tenant_id: str, session_id: str, reason: str = "paused"
    ) -> Session:
        """Hold the session, then abort the agent's current turn; `resume` continues it.

        The state changes first, so the supervisor, seeing the abort, finds the session PAUSED
        and lets go instead of calling the abort a failure.
        """
        _require_steerer(caller, tenant_id, "pause a session")
        session = self._get(tenant_id, session_id)
        session.require_status({_S.RUNNING}, "paused", _S.PAUSED)
        session.lease_owner = None
        session.lease_expires_at = None
        paused = self._transition(tenant_id, session, SessionStatus.PAUSED, reason)
        self._abort_on_agent(tenant_id, paused)
        return paused

    def resume(
        self, caller: Caller, tenant_id: str, session_id: str, reason: str = "resumed"
    ) -> Session:
        """PAUSED -> RUNNING with no lease: the dispatcher adopts it into a supervising wave,
        which tells the agent to continue."""
        _require_steerer(caller, tenant_id, "resume a session")
        session = self._get(tenant_id, session_id)
        session.require_status({_S.PAUSED}, "resumed", _S.RUNNING)
        session.metadata = {**session.metadata, "resume_requested": True}
        return self._transition(tenant_id, session, SessionStatus.RUNNING, reason)

    def retry(
        self, caller: Caller, tenant_id: str, session_id: str, reason: str = "retried"
    ) -> Session:
        """A FAILED, TIMEOUT or ORPHANED session back to PENDING now, counting an attempt
        (`RetriesExhausted` when it used its `max_retries`)."""
        _require_steerer(caller, tenant_id, "retry a session")
        session = self._get(tenant_id, session_id)
        session.require_status(RETRYABLE_STATES, "retried", _S.PENDING)
        now = self._clock()
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            event = session.retry(at=now, reason=reason)
            session.next_attempt_at = now
            session.lease_owner = None
            session.lease_expires_at = None
            session.agent_session_id = None
            recorded = uow.sessions.save_transition(session, event)
        self._publish(recorded)
        self._tell_wave_trigger(tenant_id, session.max_duration_seconds)
        return session

    def message(self, caller: Caller, tenant_id: str, session_id: str, text: str) -> FollowUp:
        """A follow-up message: queued for the agent while the session is still to run or runs
        (delivered when its current turn ends), else a new child session continuing it."""
        _require_steerer(caller, tenant_id, "send a follow-up message")
        text = checked_message(text)
        session = self._get(tenant_id, session_id)
        message_id = new_message_id()
        if session.settled:
            return self._follow_up_session(caller, session, message_id, text)
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            queued = uow.sessions.append_event(
                session.id, MESSAGE_EVENT, {"message_id": message_id, "text": text}
            )
        self._publish(queued)
        # Settled meanwhile (its supervisor looked before the message was queued)? Deliver it
        # as a session; the supervisor does the same after it ends one, and the idempotency key
        # makes the two one session.
        current = self._get(tenant_id, session_id)
        if current.settled:
            self.deliver_queued(tenant_id, current)
            return self._where_delivered(tenant_id, session.id, message_id)
        return FollowUp(message_id=message_id, session_id=session.id, delivery="queued")

    def _where_delivered(self, tenant_id: str, session_id: str, message_id: str) -> FollowUp:
        """Where the message went: the child session that continues it, else (its agent took
        it as a turn) the session itself."""
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            delivered = uow.sessions.events_of_types(session_id, [DELIVERED_EVENT])
        for event in delivered:
            if event.data.get("message_id") == message_id and event.data.get("session"):
                child = str(event.data["session"])
                return FollowUp(message_id=message_id, session_id=child, delivery="session")
        return FollowUp(message_id=message_id, session_id=session_id, delivery="queued")

    def deliver_queued(self, tenant_id: str, session: Session) -> list[FollowUp]:
        """The settled session's undelivered messages, each as a follow-up session (the
        supervisor calls this after a session ends; the control plane's own path)."""
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            waiting = undelivered(uow.sessions.events_of_types(session.id, FOLLOW_UP_EVENTS))
        return [
            self._follow_up_session(
                Caller.operator(), session, str(e.data["message_id"]), str(e.data["text"])
            )
            for e in waiting
        ]

    def _follow_up_session(
        self, caller: Caller, session: Session, message_id: str, text: str
    ) -> FollowUp:
        request = _continuing(session, follow_up_title(session), follow_up_prompt(session, text))
        request = request.model_copy(
            update={
                "idempotency_key": f"follow-up-{message_id}",
                "metadata": {"follow_up": {"of": session.id, "message_id": message_id}},
            }
        )
        child = self.submit(caller, session.tenant_id, request)
        with tenant_scope(session.tenant_id), unit_of_work(self._database) as uow:
            delivered = uow.sessions.append_event(
                session.id, DELIVERED_EVENT, {"message_id": message_id, "session": child.id}
            )
        self._publish(delivered)
        return FollowUp(message_id=message_id, session_id=child.id, delivery="session")

    def fork(
        self,
        caller: Caller,
        tenant_id: str,
        session_id: str,
        checkpoint: int | None = None,
        prompt: str | None = None,
        idempotency_key: str | None = None,
    ) -> Session:
        """A new child session that carries on from one of the session's checkpoints (its
        latest by default), on the same repository, with the source's task or a new one."""
        _require_steerer(caller, tenant_id, "fork a session")
        source = self._get(tenant_id, session_id)
        if not source.checkpoints:
            raise InvalidInput("checkpoint", f"session {source.id} has no checkpoint yet")
        chosen = source.checkpoints[-1]
        if checkpoint is not None:
            matching = [c for c in source.checkpoints if c.sequence == checkpoint]
            if not matching:
                raise NotFound("checkpoint", f"{source.id}#{checkpoint}")
            chosen = matching[0]
        request = _continuing(
            source, f"Fork: {source.title}"[:TITLE_MAX], fork_prompt(source, chosen, prompt)
        ).model_copy(
            update={
                "idempotency_key": idempotency_key,
                "metadata": {"forked_from": {"session": source.id, "checkpoint": chosen.sequence}},
            }
        )
        return self.submit(caller, tenant_id, request)

    def children(self, caller: Caller, tenant_id: str, session_id: str) -> SessionTree:
        """The session and its descendants (subtasks, follow-ups, forks), breadth first up to
        `MAX_TREE_NODES`."""
        _require_reader(caller, tenant_id)
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            root = SessionTree(session=uow.sessions.get(session_id))
            frontier, seen = [root], 1
            while frontier and seen < MAX_TREE_NODES:
                node = frontier.pop(0)
                for child in reversed(uow.sessions.list(parent_id=node.session.id, limit=1000)):
                    if seen >= MAX_TREE_NODES:
                        break
                    branch = SessionTree(session=child)
                    node.children.append(branch)
                    frontier.append(branch)
                    seen += 1
            return root

    def tasks(self, caller: Caller, tenant_id: str, session_id: str) -> list[SubtaskView]:
        """A decomposed request's tasks: one per child session, with what each waits for."""
        _require_reader(caller, tenant_id)
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            uow.sessions.get(session_id)
            children = uow.sessions.list(parent_id=session_id, limit=1000)
            tasks = sorted(
                (t for child in children for t in uow.tasks.list(session_id=child.id)),
                key=lambda t: t.id,
            )
            needs: dict[str, list[str]] = {t.id: [] for t in tasks}
            for dependency in uow.tasks.dependencies([t.id for t in tasks]):
                if dependency.task_id in needs:
                    needs[dependency.task_id].append(dependency.depends_on_id)
        return [SubtaskView(task=t, depends_on=needs.get(t.id, [])) for t in tasks]

    def preview_decomposition(
        self, caller: Caller, tenant_id: str, prompt: str
    ) -> list[SubtaskSpec]:
        """What `decompose=True` would split the prompt into; nothing is written."""
        _require_reader(caller, tenant_id)
        return decompose(checked_message(prompt))

    def statistics(self, caller: Caller, tenant_id: str) -> dict[str, Any]:
        """Counts of the tenant's sessions by status, type and priority."""
        _require_reader(caller, tenant_id)
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            counts = uow.sessions.statistics()
        return {"total": sum(counts["by_status"].values()), **counts}

    def _abort_on_agent(self, tenant_id: str, session: Session) -> None:
        """Abort the agent's turn. The state already changed: an unreachable agent server is
        recorded on the session (its turn dies with the server), not raised."""
        if self._agent_control is None or not (session.agent_id and session.agent_session_id):
            return
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            agent = uow.agents.get(session.agent_id)
        if agent.external:  # EAP v1 has no abort: its late result is refused (409)
            return
        try:
            self._agent_control.abort(agent, session.agent_session_id)
        except DomainError as error:
            logger.warning("abort of %s on %s failed: %s", session.id, agent.name, error)
            with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
                recorded = uow.sessions.append_event(
                    session.id, "agent.abort_failed", {"agent_id": agent.id, "error": str(error)}
                )
            self._publish(recorded)

    def _transition(
        self, tenant_id: str, session: Session, target: SessionStatus, reason: str
    ) -> Session:
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            event = session.transition_to(target, reason, at=self._clock())
            recorded = uow.sessions.save_transition(session, event)
        self._publish(recorded)
        return session

    # -- dispatch and retry (sensors) ---------------------------------------------------------

    def claim_pending(
        self,
        tenant_id: str,
        limit: int,
        lease: timedelta,
        owner_for: OwnerNaming,
        *,
        due_by: datetime | None = None,
        max_duration_seconds: float | None = None,
    ) -> Claim:
        """PENDING -> QUEUED for up to `limit` of the tenant's free slots, leased to one owner.

        `owner_for` names the owner (the wave) from the sessions about to be claimed. Each claim
        is a conditional UPDATE, so two dispatchers never claim one session twice; the tenant
        row is locked for the count-then-claim, so together they never exceed the tenant's
        concurrency limit either. `due_by` and `max_duration_seconds` narrow the candidates
        (see `SessionRepository.due_pending`).
        """
        now = self._clock()
        claimed: list[Session] = []
        recorded: list[SessionEvent] = []
        owner = ""
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            # Nothing due, or no free slot: no tenant lock (on SQLite a write, queued behind
            # every other writer) for the sensor's and the waves' frequent looks that find
            # nothing to take; the locked path below decides on its own reads.
            due = uow.sessions.due_pending(
                now, 1, due_by=due_by, max_duration_seconds=max_duration_seconds
            )
            if not due:
                return Claim(owner, claimed)
            tenant = uow.tenants.get(tenant_id)
            if not tenant.active or free_session_slots(tenant, uow.sessions.count_active()) <= 0:
                return Claim(owner, claimed)
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            tenant = uow.tenants.get_for_update(tenant_id)
            slots = min(free_session_slots(tenant, uow.sessions.count_active()), limit)
            if not tenant.active or slots <= 0:
                return Claim(owner, claimed)
            # Those no agent can serve are set aside (marked, left PENDING): others fill the slots.
            offered = offered_capabilities(uow)
            candidates: list[Session] = []
            for _ in range(MAX_MARKING_ROUNDS):
                due = uow.sessions.due_pending(
                    now,
                    slots - len(candidates),
                    due_by=due_by,
                    max_duration_seconds=max_duration_seconds,
                )
                routable = [
                    s for s in due if not set_aside_if_unroutable(uow, s, offered, now, recorded)
                ]
                candidates += routable
                if len(routable) == len(due) or len(candidates) == slots:
                    break
            if candidates:
                owner = owner_for(candidates)
            for session in candidates:
                if _claim(uow, session, owner, now + lease, now, recorded):
                    claimed.append(session)
        for event in recorded:
            self._publish(event)
        return Claim(owner, claimed)

    def claim(self, tenant_id: str, session_id: str, owner: str, lease: timedelta) -> Session:
        """Claim one given session (a launch that names it), if the tenant's quota allows.

        Over the quota it stays PENDING and the dispatcher starts it when a slot frees up.
        """
        now = self._clock()
        recorded: list[SessionEvent] = []
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            tenant = uow.tenants.get_for_update(tenant_id)
            session = uow.sessions.get(session_id)
            has_slot = free_session_slots(tenant, uow.sessions.count_active()) > 0
            if (
                session.status is SessionStatus.PENDING
                and session.unroutable_since is None
                and tenant.active
                and has_slot
                and not set_aside_if_unroutable(
                    uow, session, offered_capabilities(uow), now, recorded
                )
            ):
                _claim(uow, session, owner, now + lease, now, recorded)
        for event in recorded:
            self._publish(event)
        return session

    def anything_for_a_wave(self, tenant_id: str, max_duration_seconds: float) -> bool:
        """Whether a wave of the tenant would find work: a session whose supervisor is gone, or
        a due one allowed no longer than `max_duration_seconds`. One transaction of two short
        reads, for the wave's frequent looks that mostly find nothing (`services.top_up`)."""
        now = self._clock()
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            return bool(
                uow.sessions.with_expired_lease(now, LEASED_STATES, limit=1)
                or uow.sessions.due_pending(now, 1, max_duration_seconds=max_duration_seconds)
            )

    def lease_unsupervised(
        self,
        tenant_id: str,
        limit: int,
        lease: timedelta,
        owner_for: OwnerNaming,
        *,
        expired_by: datetime | None = None,
    ) -> Claim:
        """Sessions whose supervisor is gone (claimed but never started, or running with an
        expired lease), leased to a new owner (wave) that starts or adopts them. One claimed
        but never started that no agent can serve any more goes back to PENDING instead.
        `expired_by` takes only leases that ran out by then (the dispatcher leaves the others
        to the tenant's live waves for a while)."""
        now = self._clock()
        leased: list[Session] = []
        recorded: list[SessionEvent] = []
        owner = ""
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            stale = uow.sessions.with_expired_lease(
                min(now, expired_by) if expired_by is not None else now,
                LEASED_STATES,
                limit=limit,
            )
            if any(s.status is SessionStatus.QUEUED and s.required_capabilities for s in stale):
                stale = released_if_unroutable(uow, stale, now, recorded)
            if not stale:
                self._publish_all(recorded)
                return Claim(owner, leased)
            owner = owner_for(stale)
            for session in stale:
                session.lease_owner = owner
                session.lease_expires_at = now + lease
                try:
                    uow.sessions.save(session)
                except ConcurrentModification:
                    continue
                leased.append(session)
        self._publish_all(recorded)
        return Claim(owner, leased)

    def _publish_all(self, events: list[SessionEvent]) -> None:
        for event in events:
            self._publish(event)

    def _retry_policy(self, session: Session) -> RetryPolicy:
        if self._retry_base_seconds is None:
            return RetryPolicy(max_retries=session.max_retries)
        return RetryPolicy(
            max_retries=session.max_retries,
            base_delay_seconds=self._retry_base_seconds,
            max_delay_seconds=max(self._retry_base_seconds * 16, self._retry_base_seconds),
        )

    def release_leases(self, tenant_id: str, owner: str) -> list[Session]:
        """Expire the leases `owner` holds (its run died), so the dispatcher adopts them now."""
        now = self._clock()
        released: list[Session] = []
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            for session in uow.sessions.leased_by(owner):
                if session.is_final:
                    continue
                session.lease_expires_at = now
                try:
                    uow.sessions.save(session)
                except ConcurrentModification:
                    continue
                released.append(session)
        return released

    def retry_due(self, tenant_id: str, limit: int = 100) -> list[Session]:
        """FAILED/TIMEOUT/ORPHANED sessions with retries left go back to PENDING with backoff."""
        now = self._clock()
        retried: list[Session] = []
        recorded: list[SessionEvent] = []
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            candidates = uow.sessions.list(
                statuses={SessionStatus.FAILED, SessionStatus.TIMEOUT, SessionStatus.ORPHANED},
                limit=limit,
            )
            for session in candidates:
                if not session.can_retry:
                    continue
                event = session.retry(
                    policy=self._retry_policy(session),
                    at=now,
                    reason=f"retry after {session.status.value}",
                )
                session.lease_owner = None
                session.lease_expires_at = None
                session.agent_session_id = None
                recorded.append(uow.sessions.save_transition(session, event))
                retried.append(session)
        for event in recorded:
            self._publish(event)
        return retried


def _claim(
    uow: UnitOfWork,
    session: Session,
    owner: str,
    lease_until: datetime,
    now: datetime,
    recorded: list[SessionEvent],
) -> bool:
    event = session.transition_to(SessionStatus.QUEUED, f"claimed by {owner}", at=now)
    session.lease_owner = owner
    session.lease_expires_at = lease_until
    try:
        recorded.append(uow.sessions.save_transition(session, event))
    except ConcurrentModification:
        return False
    return True


def _max_duration(session: Session) -> int:
    return session.max_duration_seconds


def _same_request(existing: Session, request: SubmitSession) -> Session:
    """The key's session when it was submitted with this very request; another request with
    the same key is refused (a session from before the digest was kept: by its prompt)."""
    digest = existing.metadata.get(REQUEST_DIGEST)
    same = digest == request.digest() if digest else existing.initial_prompt == request.prompt
    if not same:
        raise IdempotencyKeyReused(request.idempotency_key or "", existing.id)
    return existing


def _require_reader(caller: Caller, tenant_id: str) -> None:
    """Reading a tenant's sessions: any of its callers (VIEWER up) or the operator."""
    caller.require_tenant(tenant_id)
    caller.require(Role.VIEWER, "read sessions")


def _require_steerer(caller: Caller, tenant_id: str, action: str) -> None:
    """Steering (cancel, pause, message, ...): a MEMBER up, on any of the tenant's sessions."""
    caller.require_tenant(tenant_id)
    caller.require(Role.MEMBER, action)


def _continuing(session: Session, title: str, prompt: str) -> SubmitSession:
    """A child request like `session` (type, model, repository, limits), with its own prompt."""
    return SubmitSession(
        title=title,
        prompt=prompt,
        description=session.description,
        session_type=session.session_type,
        priority=session.priority,
        model=session.model,
        agent_config=session.agent_config,
        max_duration_seconds=session.max_duration_seconds,
        max_retries=session.max_retries,
        tags=session.tags,
        required_capabilities=session.required_capabilities,
        cost_cap=session.cost_cap,
        parent_id=session.id,
        repository=session.repository,
        ref=session.ref,
    )
