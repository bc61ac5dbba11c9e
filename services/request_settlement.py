"""Coordinating decomposed requests: one pass per tenant, run by the retry sensor every tick.

For each coordinating parent that is PENDING or RUNNING, in one transaction: children whose
prerequisite ended otherwise for good are CANCELLED (in dependency order, so a failure cascades
down a chain in one pass), each child's task follows its session, the parent becomes RUNNING
once a child has started, its metrics sum the children's, and once every child is settled it
ends COMPLETED, PARTIALLY_COMPLETED or FAILED with the children's results gathered. Children of
a parent that ended some other way (cancelled, stopped) and are PENDING again are CANCELLED.

Starting children is the dispatcher's job: `due_pending` offers a child only when its
prerequisites COMPLETED (see `resources.database.repositories.sessions`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from domain.clock import utcnow
from domain.dag import check_dependency_graph
from domain.decomposed_requests import (
    broken_prerequisite,
    gathered_result,
    has_started,
    parent_outcome,
    prerequisites_met,
    summed_metrics,
    task_steps,
)
from domain.errors import ConcurrentModification
from domain.events import SessionEvent
from domain.session import SESSION_MACHINE, Session, SessionStatus
from domain.task import Task
from resources.database import Database, UnitOfWork, tenant_scope, unit_of_work

logger = logging.getLogger(__name__)
EventSink = Callable[[SessionEvent], None]
_S = SessionStatus


class CoordinationService:
    def __init__(
        self,
        database: Database,
        publish: EventSink | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._database = database
        self._publish = publish or (lambda event: None)
        self._clock = clock

    def settle(self, tenant_id: str, limit: int = 100) -> list[Session]:
        """One pass over the tenant's decomposed requests; returns the parents that ended."""
        ended: list[Session] = []
        with tenant_scope(tenant_id):
            self._cancel_abandoned(limit)
            with unit_of_work(self._database) as uow:
                parents = uow.sessions.coordinators({_S.PENDING, _S.RUNNING}, limit=limit)
            for parent in parents:
                try:
                    settled = self._settle(parent.id)
                except ConcurrentModification as error:  # changed meanwhile: next tick
                    logger.info("settling %s postponed: %s", parent.id, error)
                    continue
                if settled is not None:
                    ended.append(settled)
        return ended

    def _settle(self, parent_id: str) -> Session | None:
        now = self._clock()
        recorded: list[SessionEvent] = []
        with unit_of_work(self._database) as uow:
            parent = uow.sessions.get(parent_id)
            if parent.status not in {_S.PENDING, _S.RUNNING}:
                return None
            children, tasks, prerequisites, order = _decomposition(uow, parent)
            for child_id in order:
                child = children[child_id]
                before = prerequisites[child_id]
                broken = broken_prerequisite(before)
                if child.status is _S.PENDING and broken is not None:
                    reason = (
                        f"prerequisite {broken.id} ({broken.title}) ended {broken.status.value}"
                    )
                    event = child.transition_to(_S.CANCELLED, reason, at=now)
                    recorded.append(uow.sessions.save_transition(child, event))
                sync_task(uow, tasks[child_id], child, prerequisites_met(before), now)
            recorded += _advance_parent(uow, parent, list(children.values()), now)
        for event in recorded:
            self._publish(event)
        return parent if parent.settled else None

    def _cancel_abandoned(self, limit: int) -> None:
        """PENDING children of a parent that ended (cancelled, stopped) can never start."""
        now = self._clock()
        recorded: list[SessionEvent] = []
        try:
            with unit_of_work(self._database) as uow:
                for child in uow.sessions.abandoned_subtasks(limit=limit):
                    assert child.parent_id is not None
                    parent = uow.sessions.get(child.parent_id)
                    reason = f"parent {parent.id} {parent.status.value}"
                    event = child.transition_to(_S.CANCELLED, reason, at=now)
                    recorded.append(uow.sessions.save_transition(child, event))
                    for task in uow.tasks.list(session_id=child.id):
                        sync_task(uow, task, child, False, now)
        except ConcurrentModification as error:
            logger.info("cancelling abandoned subtasks postponed: %s", error)
            return
        for event in recorded:
            self._publish(event)


def sync_task(uow: UnitOfWork, task: Task, child: Session, ready: bool, at: datetime) -> None:
    """Walk the child's task to the state matching its session (see `task_steps`)."""
    for step in task_steps(task.status, child, ready):
        event = task.transition_to(step, f"session {child.id} {child.status.value}", at=at)
        uow.tasks.save_transition(task, event)


def _decomposition(
    uow: UnitOfWork, parent: Session
) -> tuple[dict[str, Session], dict[str, Task], dict[str, list[Session]], list[str]]:
    """The parent's subtask children, their tasks and prerequisites (by child id), and the
    children's ids in dependency order."""
    children: dict[str, Session] = {}
    tasks: dict[str, Task] = {}
    for child in sorted(uow.sessions.list(parent_id=parent.id, limit=1000), key=_id):
        for task in uow.tasks.list(session_id=child.id):
            children[child.id], tasks[child.id] = child, task
    child_of_task = {task.id: child_id for child_id, task in tasks.items()}
    dependencies = [
        dependency
        for dependency in uow.tasks.dependencies(list(child_of_task))
        if dependency.task_id in child_of_task and dependency.depends_on_id in child_of_task
    ]
    prerequisites: dict[str, list[Session]] = {child_id: [] for child_id in children}
    for dependency in dependencies:
        prerequisite = children[child_of_task[dependency.depends_on_id]]
        prerequisites[child_of_task[dependency.task_id]].append(prerequisite)
    task_order = check_dependency_graph(sorted(child_of_task), dependencies)
    return children, tasks, prerequisites, [child_of_task[task_id] for task_id in task_order]


def _id(session: Session) -> str:
    return session.id  # ids sort by creation: the subtasks' order


def _advance_parent(
    uow: UnitOfWork, parent: Session, children: list[Session], now: datetime
) -> list[SessionEvent]:
    recorded: list[SessionEvent] = []
    begun = [child for child in children if has_started(child)]
    first_started = min(begun, key=lambda c: c.metrics.started_at or now, default=None)
    if parent.status is _S.PENDING and first_started is not None:
        event = parent.transition_to(_S.RUNNING, f"subtask {first_started.id} started", at=now)
        recorded.append(uow.sessions.save_transition(parent, event))
    metrics = summed_metrics(parent.metrics, children)
    outcome = parent_outcome(children)
    if outcome is None:
        if metrics != parent.metrics:
            parent.metrics = metrics
            uow.sessions.save(parent)
        return recorded
    if not SESSION_MACHINE.allows(parent.status, outcome):  # PENDING: nothing ever started
        outcome = _S.FAILED
    completed = [c for c in children if c.status is _S.COMPLETED]
    others = [f"{c.id} {c.status.value}" for c in children if c.status is not _S.COMPLETED]
    reason = f"{len(completed)} of {len(children)} subtasks completed"
    parent.metrics = metrics
    parent.result = gathered_result(children)
    if others:
        reason += f"; not: {', '.join(others)}"
        parent.error = {"reason": reason}
    event = parent.transition_to(outcome, reason, at=now)
    recorded.append(uow.sessions.save_transition(parent, event))
    return recorded
