"""Supervising a wave of sessions at once, with asyncio, on their agents' OpenCode servers.

Each session: route to an agent, create the agent-side session, send the prompt, follow the
server's shared event stream, enforce the deadline (abort -> TIMEOUT) and the cost cap (abort ->
STOPPED), renew the lease, and record the outcome (state, tokens, cost, diff) durably. A session
whose lease ran out (its wave died) is adopted: still running on the agent, it is followed on; its
agent session gone, it becomes ORPHANED and the retry sensor sends it elsewhere.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from domain.agent import Agent
from domain.clock import utcnow
from domain.errors import ConcurrentModification, NoAgentAvailable
from domain.events import SessionEvent
from domain.metrics import SessionMetrics
from domain.routing import AgentState, choose_agent
from domain.session import Session, SessionStatus
from resources.database import Database, UnitOfWork, tenant_scope, unit_of_work
from resources.opencode.client import OpenCodeClient
from resources.opencode.errors import AgentServerError, AgentSessionGone
from resources.opencode.event_stream import ServerEventStream
from resources.opencode.models import Message, ServerEvent
from resources.opencode.resource import OpenCodeResource
from services.agent_load import AgentLoadView
from services.event_batch import EventBatch
from services.session_outcome import SessionOutcome, outcome_of
from services.tenant_workspaces import tenant_workspace
from services.top_up import TopUp
from services.turn_tracker import TurnTracker

logger = logging.getLogger(__name__)
EventSink = Callable[[SessionEvent], None]
SUPERVISED = frozenset({SessionStatus.RUNNING, SessionStatus.DEGRADED})
CONTINUE_PROMPT = "Continue the task from where you stopped."
DIFF_RETRY_SECONDS = 0.3
PROMPT_CONFIRM_ATTEMPTS = 3  # after a prompt_async without an answer
PROMPT_CONFIRM_PAUSE_SECONDS = 2.0


@dataclass(frozen=True)
class SupervisionSettings:
    lease: timedelta = timedelta(seconds=60)
    renew_every: timedelta = timedelta(seconds=15)
    orphan_after_seconds: float = 15.0  # agent server unreachable this long: agent session lost
    poll_seconds: float = 1.0
    routing_wait_seconds: float = 2.0  # between routing attempts while every agent is full
    routing_refresh_seconds: float = 1.0  # agents and their load re-read at most this often
    tenant_workspaces: bool = True  # each tenant's sessions in its own worktree on a server
    diff_settle_seconds: float = 2.0  # the server's diff may lag the session's idle this long
    starts_per_agent: int = 8  # session starts (create + prompt) in flight at once per agent
    event_flush_seconds: float = 0.25  # observational events wait at most this long (EventBatch)


@dataclass
class _AgentLink:
    agent: Agent
    client: OpenCodeClient
    stream: ServerEventStream
    # Starts queue here rather than all hitting the server at once (it answers slowly, then not).
    starting: asyncio.Semaphore
    directory: str | None = None  # the tenant's workspace on the server (None: its default)
    healthy: bool = True


@dataclass
class _Supervision:
    """What one session's supervision knows between events."""

    session: Session
    link: _AgentLink
    tracker: TurnTracker
    aborted_by_us: str | None = None
    lease_lost: bool = False  # the wave's last renewal did not hold it: check who has it


class WaveSupervisor:
    def __init__(
        self,
        database: Database,
        opencode: OpenCodeResource,
        owner: str,
        publish: EventSink | None = None,
        settings: SupervisionSettings | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._database = database
        self._opencode = opencode
        self._owner = owner
        self._publish = publish or (lambda event: None)
        self._settings = settings or SupervisionSettings()
        self._clock = clock
        self._links: dict[str, _AgentLink] = {}
        self._routing_lock = asyncio.Lock()
        self._load = AgentLoadView(
            self._read_registry,
            timedelta(seconds=self._settings.routing_refresh_seconds),
            clock,
        )
        self._following: dict[str, _Supervision] = {}
        self._events = EventBatch()
        self._tenant = ""

    async def run(
        self, tenant_id: str, session_ids: list[str], top_up: TopUp | None = None
    ) -> list[SessionOutcome]:
        """Supervise every session to its end; one failing supervision never stops the others.

        With `top_up`, the wave also takes on the tenant's new sessions while it has room, and
        ends after lingering with nothing to do (`services.top_up`).
        """
        self._tenant = tenant_id
        renewer = asyncio.create_task(self._renew_leases(tenant_id))
        flusher = asyncio.create_task(self._flush_events_periodically(tenant_id))
        running: dict[asyncio.Task[SessionOutcome], str] = {}
        outcomes: list[SessionOutcome] = []

        def start(ids: list[str]) -> None:
            for session_id in ids:
                running[asyncio.create_task(self._supervise(tenant_id, session_id))] = session_id

        start(session_ids)
        idle_since: float | None = None
        try:
            while running or top_up is not None:
                if running:
                    done, _ = await asyncio.wait(
                        running,
                        timeout=top_up.every_seconds if top_up else None,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                    for task in done:
                        outcomes.append(self._outcome(tenant_id, running.pop(task), task))
                if top_up is None:
                    continue
                start(self._top_up(tenant_id, top_up, room=top_up.size - len(running)))
                if running:
                    idle_since = None
                    continue
                loop_time = asyncio.get_running_loop().time()
                idle_since = idle_since if idle_since is not None else loop_time
                if loop_time - idle_since >= top_up.linger_seconds:
                    break
                await asyncio.sleep(top_up.every_seconds)
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            for helper in (renewer, flusher):
                helper.cancel()
                with suppress(asyncio.CancelledError):
                    await helper
            self._flush_events(tenant_id)
            for link in self._links.values():
                await link.stream.close()
                await link.client.aclose()
        return outcomes

    def _outcome(
        self, tenant_id: str, session_id: str, task: asyncio.Task[SessionOutcome]
    ) -> SessionOutcome:
        error = task.exception()
        if error is None:
            return task.result()
        logger.error("supervision of %s failed: %r", session_id, error, exc_info=error)
        return self._current_outcome(tenant_id, session_id, repr(error))

    def _top_up(self, tenant_id: str, top_up: TopUp, room: int) -> list[str]:
        """The tenant's next due sessions that fit the wave's room and its runtime budget."""
        within = (top_up.until - self._clock()).total_seconds()
        if room <= 0 or within <= 0:
            return []
        try:
            with tenant_scope(tenant_id):
                return top_up.claim(room, within)
        except Exception as error:  # the next round tries again; the dispatcher is the fallback
            logger.warning("tenant %s: wave %s top-up failed: %r", tenant_id, self._owner, error)
            return []

    # -- one session ----------------------------------------------------------------------------

    async def _supervise(self, tenant_id: str, session_id: str) -> SessionOutcome:
        with tenant_scope(tenant_id):
            session = self._load_session(session_id)
            if session.status is SessionStatus.QUEUED and session.lease_owner == self._owner:
                supervision = await self._start(session)
            elif session.status in SUPERVISED:
                supervision = await self._adopt(session)
            else:
                return outcome_of(session, "not ours to supervise")
            if supervision is None:
                return outcome_of(self._load_session(session_id), "ended before it was followed")
            self._following[session_id] = supervision
            try:
                return await self._follow(supervision)
            finally:
                del self._following[session_id]
                supervision.link.stream.unsubscribe(supervision.session.agent_session_id or "")

    async def _start(self, session: Session) -> _Supervision | None:
        link = await self._route(session)
        async with link.starting:
            return await self._start_on(link, session)

    async def _start_on(self, link: _AgentLink, session: Session) -> _Supervision | None:
        try:
            agent_session = await link.client.create_session(
                f"{session.id} {session.title}", directory=link.directory
            )
        except AgentServerError as error:
            self._load.start_failed(link.agent.id)
            self._finish(session, SessionStatus.FAILED, f"agent server error: {error.detail}")
            return None
        session.agent_id = link.agent.id
        session.agent_session_id = agent_session.id
        if link.directory:
            session.metadata = {**session.metadata, "agent_directory": link.directory}
        now = self._clock()
        session.lease_expires_at = now + self._settings.lease
        try:
            self._save_transition(
                session, SessionStatus.RUNNING, f"on {link.agent.name} as {agent_session.id}"
            )
        except BaseException:
            self._load.start_failed(link.agent.id)
            raise
        self._load.started(link.agent.id)
        link.stream.subscribe(agent_session.id)
        supervision = self._supervision(session, link)
        try:
            await link.client.prompt_async(
                agent_session.id,
                session.initial_prompt,
                agent=link.agent.opencode_agent,
                model=session.model or link.agent.model,
                directory=link.directory,
            )
        except AgentServerError as error:
            # No answer is not a refusal: an overloaded server may have queued the prompt.
            if error.status_code is None and await self._prompt_arrived(link, agent_session.id):
                self._append(
                    session.id,
                    "agent.prompted",
                    {"agent_session_id": agent_session.id, "confirmed_after": error.detail},
                )
                return supervision
            self._finish(
                session, SessionStatus.FAILED, f"agent server error: {error.detail}", supervision
            )
            return None
        self._append(session.id, "agent.prompted", {"agent_session_id": agent_session.id})
        return supervision

    async def _prompt_arrived(self, link: _AgentLink, agent_session_id: str) -> bool:
        """Whether the agent session holds our prompt (a user message), asked a few times."""
        for attempt in range(PROMPT_CONFIRM_ATTEMPTS):
            if attempt:
                await asyncio.sleep(PROMPT_CONFIRM_PAUSE_SECONDS)
            try:
                messages = await link.client.messages(agent_session_id, directory=link.directory)
            except AgentServerError:
                continue
            if any(message.info.role == "user" for message in messages):
                return True
        return False

    async def _adopt(self, session: Session) -> _Supervision | None:
        """Take over a session whose supervisor is gone; ORPHANED if its agent session is too."""
        now = self._clock()
        if not session.lease_expired(now) and session.lease_owner != self._owner:
            return None
        if not (session.agent_id and session.agent_session_id):
            self._finish(session, SessionStatus.ORPHANED, "no agent session to adopt")
            return None
        with unit_of_work(self._database) as uow:
            agent = uow.agents.get(session.agent_id)
        link = await self._link(agent)
        session.lease_owner = self._owner
        session.lease_expires_at = now + self._settings.lease
        try:
            self._save(session)
        except ConcurrentModification:
            return None  # another wave adopted it first
        link.stream.subscribe(session.agent_session_id)
        try:
            messages = await link.client.messages(
                session.agent_session_id, directory=link.directory
            )
        except AgentServerError as error:
            link.stream.unsubscribe(session.agent_session_id)
            self._finish(session, SessionStatus.ORPHANED, f"agent session lost: {error.detail}")
            return None
        supervision = self._supervision(session, link)
        for message in messages:
            supervision.tracker.observe_message(message.info)
        self._append(session.id, "session.adopted", {"wave": self._owner})
        if session.metadata.get("resume_requested"):
            session.metadata = {
                k: v for k, v in session.metadata.items() if k != "resume_requested"
            }
            self._save(session)
            await link.client.prompt_async(
                session.agent_session_id,
                CONTINUE_PROMPT,
                agent=agent.opencode_agent,
                directory=link.directory,
            )
        elif await self._turn_finished(supervision):
            supervision.tracker.idle_seen = True
        return supervision

    async def _follow(self, sup: _Supervision) -> SessionOutcome:
        assert sup.session.agent_session_id is not None
        queue = sup.link.stream.subscribe(sup.session.agent_session_id)
        while True:
            if sup.tracker.idle_seen and await self._turn_finished(sup):
                return await self._complete(sup)
            sup.tracker.idle_seen = False
            event = await self._next_event(queue)
            if event is not None:
                self._observe(sup, event)
            ended = await self._check_limits(sup)
            if ended is not None:
                return ended

    async def _next_event(self, queue: asyncio.Queue[ServerEvent]) -> ServerEvent | None:
        try:
            return await asyncio.wait_for(queue.get(), self._settings.poll_seconds)
        except TimeoutError:
            return None

    def _observe(self, sup: _Supervision, event: ServerEvent) -> None:
        session_id = sup.session.id
        match event.type:
            case "message.updated":
                info = event.properties.get("info") or {}
                if info.get("role") == "assistant":
                    sup.tracker.observe_message_dict(info)
            case "session.status":
                status = event.status
                if status is not None and status.type == "retry":
                    sup.tracker.retries += 1
                    self._append(
                        session_id,
                        "agent.retry",
                        {"attempt": status.attempt, "message": status.message},
                    )
                elif status is not None and status.type == "idle":
                    sup.tracker.idle_seen = True
            case "session.idle":
                sup.tracker.idle_seen = True
            case "session.error":
                sup.tracker.error = event.error
                self._append(session_id, "agent.error", {"error": _error_summary(event.error)})
            case "message.part.updated":
                part = event.properties.get("part") or {}
                if part.get("type") == "tool" and (part.get("state") or {}).get("status") in {
                    "completed",
                    "error",
                }:
                    sup.tracker.tool_calls += 1
                    self._append(
                        session_id,
                        "agent.tool",
                        {"tool": part.get("tool"), "status": part["state"]["status"]},
                    )
            case "permission.asked":
                asyncio.get_running_loop().create_task(self._answer_permission(sup, event))

    async def _answer_permission(self, sup: _Supervision, event: ServerEvent) -> None:
        """Policy from the session's agent config: allow, reject, or wait (until the deadline)."""
        policy = str(sup.session.agent_config.get("permission", "wait"))
        request_id = event.properties.get("id")
        self._append(sup.session.id, "agent.permission", {"policy": policy, "request": request_id})
        if policy in {"allow", "reject"} and request_id:
            reply = "once" if policy == "allow" else "reject"
            await sup.link.client.reply_permission(request_id, reply, directory=sup.link.directory)

    async def _check_limits(self, sup: _Supervision) -> SessionOutcome | None:
        now = self._clock()
        session = sup.session
        deadline = session.deadline
        if deadline is not None and now >= deadline:
            await self._abort(sup, "deadline")
            await self._collect_diff(sup)
            return self._finish(
                session,
                SessionStatus.TIMEOUT,
                f"ran past its max duration of {session.max_duration_seconds} s",
                sup,
            )
        breach = session.cost_cap.breach(self._metrics(sup)) if session.cost_cap else None
        if breach:
            await self._abort(sup, "cost cap")
            await self._collect_diff(sup)
            return self._finish(session, SessionStatus.STOPPED, breach, sup)
        if sup.link.stream.seconds_down() > self._settings.orphan_after_seconds:
            try:
                await sup.link.client.health()
            except AgentServerError as error:
                sup.link.healthy = False
                return self._finish(
                    session, SessionStatus.ORPHANED, f"agent server lost: {error.detail}", sup
                )
        if sup.lease_lost:
            sup.lease_lost = False
            current = self._load_session(session.id)
            if current.status not in SUPERVISED or current.lease_owner != self._owner:
                return outcome_of(current, f"taken over: {current.status.value}")
        return None

    async def _renew_leases(self, tenant_id: str) -> None:
        """Every `renew_every`, one statement extends the leases of all the wave's sessions
        (waiting for an agent, or followed); a followed session it did not hold is checked."""
        with tenant_scope(tenant_id):
            while True:
                await asyncio.sleep(self._settings.renew_every.total_seconds())
                until = self._clock() + self._settings.lease
                try:
                    with unit_of_work(self._database) as uow:
                        held = uow.sessions.renew_leases(self._owner, until)
                except Exception as error:  # the next round retries; the lease outlasts three
                    logger.warning(
                        "tenant %s: lease renewal of wave %s failed: %r",
                        tenant_id,
                        self._owner,
                        error,
                    )
                    continue
                for session_id, sup in self._following.items():
                    if session_id in held:
                        sup.session.lease_expires_at = until
                    else:
                        sup.lease_lost = True

    async def _turn_finished(self, sup: _Supervision) -> bool:
        """Idle is announced before the last assistant message is final: confirm from messages."""
        assert sup.session.agent_session_id is not None
        try:
            messages = await sup.link.client.messages(
                sup.session.agent_session_id, directory=sup.link.directory
            )
        except AgentSessionGone:
            return False
        for message in messages:
            sup.tracker.observe_message(message.info)
        sup.tracker.messages = messages
        return _answered(messages)

    async def _complete(self, sup: _Supervision) -> SessionOutcome:
        await self._collect_diff(sup)
        error = sup.tracker.error
        session = sup.session
        if error and error.get("name") == "MessageAbortedError" and not sup.aborted_by_us:
            current = self._load_session(session.id)
            if current.status not in SUPERVISED:
                return outcome_of(current, f"{current.status.value} while running")
        if error:
            return self._finish(session, SessionStatus.FAILED, _error_summary(error), sup)
        return self._finish(session, SessionStatus.COMPLETED, "agent finished", sup)

    async def _collect_diff(self, sup: _Supervision) -> None:
        """Files the agent changed in this agent session (the diff from its first prompt)."""
        first_user = next((m for m in sup.tracker.messages if m.info.role == "user"), None)
        if first_user is None or sup.session.agent_session_id is None:
            return
        loop = asyncio.get_running_loop()
        settle_until = loop.time() + self._settings.diff_settle_seconds
        while True:
            try:
                sup.tracker.diff = await sup.link.client.diff(
                    sup.session.agent_session_id,
                    message_id=first_user.info.id,
                    directory=sup.link.directory,
                )
            except AgentServerError as error:
                logger.warning("diff of %s unavailable: %s", sup.session.id, error)
                return
            pending = sup.tracker.diff_pending()
            if not pending:
                return
            if loop.time() >= settle_until:
                logger.info(
                    "tenant %s session %s: diff lacks %s after %.0f s; taken from its tool calls",
                    sup.session.tenant_id,
                    sup.session.id,
                    sorted(pending),
                    self._settings.diff_settle_seconds,
                )
                return
            await asyncio.sleep(DIFF_RETRY_SECONDS)

    async def _abort(self, sup: _Supervision, why: str) -> None:
        sup.aborted_by_us = why
        assert sup.session.agent_session_id is not None
        try:
            await sup.link.client.abort(sup.session.agent_session_id, directory=sup.link.directory)
        except AgentServerError as error:
            logger.warning("abort of %s failed: %s", sup.session.id, error)

    # -- endings --------------------------------------------------------------------------------

    def _finish(
        self,
        session: Session,
        target: SessionStatus,
        reason: str,
        sup: _Supervision | None = None,
    ) -> SessionOutcome:
        """Record the end of this attempt: state, metrics, result, usage, agent performance."""
        if sup is not None:
            session.metrics = self._metrics(sup)
            session.result = sup.tracker.result()
            if target is not SessionStatus.COMPLETED:
                session.error = {"reason": reason}
        session.lease_owner = None
        session.lease_expires_at = None
        try:
            with self._state_change(session) as (uow, recorded):
                event = session.transition_to(target, reason, at=self._clock())
                recorded.append(uow.sessions.save_transition(session, event))
                if sup is not None:
                    delta = sup.tracker.usage_delta()
                    uow.usage.record(
                        self._clock().date(),
                        sessions=1,
                        tokens_in=delta.tokens_in,
                        tokens_out=delta.tokens_out,
                        cost_usd=delta.cost_usd,
                    )
                    agent = uow.agents.get_for_update(sup.link.agent.id)
                    agent.performance = agent.performance.record(target, at=self._clock())
                    uow.agents.save(agent)
        except ConcurrentModification:
            current = self._load_session(session.id)
            return outcome_of(current, f"changed meanwhile: {current.status.value}")
        logger.info(
            "session %s of tenant %s: %s (%s)", session.id, session.tenant_id, target.value, reason
        )
        return outcome_of(session, reason)

    # -- routing and agent links ----------------------------------------------------------------

    async def _route(self, session: Session) -> _AgentLink:
        """Choose an agent; while all are full, wait (the wave renews the lease meanwhile)."""
        waiting_for = ""
        while True:
            async with self._routing_lock:
                busy = self._load.busy()
                states = []
                for agent in self._load.agents():
                    link = await self._link(agent)
                    states.append(
                        AgentState(agent, busy[agent.id], healthy=link.healthy, now=self._clock())
                    )
                try:
                    decision = choose_agent(states, session.required_capabilities)
                except NoAgentAvailable as refused:
                    reason = str(refused)
                else:
                    self._load.routed(decision.agent_id)
                    self._append(
                        session.id,
                        "session.routed",
                        {"agent_id": decision.agent_id, "reason": decision.reason},
                    )
                    return self._links[decision.agent_id]
            if reason != waiting_for:  # recorded once per reason, not every round
                self._append(session.id, "session.waiting", {"reason": reason})
                waiting_for = reason
            await asyncio.sleep(self._settings.routing_wait_seconds)

    async def _link(self, agent: Agent) -> _AgentLink:
        link = self._links.get(agent.id)
        if link is None:
            client = self._opencode.client_for(agent)
            directory, workspace_ready = None, True
            if self._settings.tenant_workspaces:
                try:
                    directory = await tenant_workspace(client, self._tenant, self._database)
                except AgentServerError as error:  # never fall back to a shared workspace
                    logger.warning(
                        "tenant %s: no workspace on agent %s: %s", self._tenant, agent.id, error
                    )
                    workspace_ready = False
            stream = ServerEventStream(client, directory)
            link = _AgentLink(
                agent=agent,
                client=client,
                stream=stream,
                directory=directory,
                starting=asyncio.Semaphore(self._settings.starts_per_agent),
            )
            self._links[agent.id] = link
            await stream.start(wait_seconds=5.0)
            link.healthy = workspace_ready and stream.connected.is_set()
        return link

    def _read_registry(self) -> tuple[list[Agent], dict[str, int]]:
        with unit_of_work(self._database) as uow:
            return uow.agents.list(active_only=True), uow.sessions.active_by_agent()

    # -- persistence helpers --------------------------------------------------------------------

    def _supervision(self, session: Session, link: _AgentLink) -> _Supervision:
        return _Supervision(session=session, link=link, tracker=TurnTracker(base=session.metrics))

    def _metrics(self, sup: _Supervision) -> SessionMetrics:
        return sup.tracker.metrics()

    def _load_session(self, session_id: str) -> Session:
        with unit_of_work(self._database) as uow:
            return uow.sessions.get(session_id)

    def _save(self, session: Session) -> None:
        with unit_of_work(self._database) as uow:
            uow.sessions.save(session)

    def _save_transition(self, session: Session, target: SessionStatus, reason: str) -> None:
        with self._state_change(session) as (uow, recorded):
            event = session.transition_to(target, reason, at=self._clock())
            recorded.append(uow.sessions.save_transition(session, event))

    @contextmanager
    def _state_change(self, session: Session) -> Iterator[tuple[UnitOfWork, list[SessionEvent]]]:
        """One transaction for a state change, the session's pending events written first (its
        history keeps its order); what the caller adds to the list is published after the
        commit, with them. If the transaction fails, the events stay pending."""
        pending = self._events.take(session.id)
        try:
            with unit_of_work(self._database) as uow:
                recorded = self._events.write(uow, pending)
                yield uow, recorded
        except BaseException:
            self._events.restore(pending)
            raise
        for event in recorded:
            self._publish(event)

    def _append(self, session_id: str, event_type: str, data: dict[str, Any]) -> None:
        """Record an observation; written with the next flush or state change (EventBatch)."""
        self._events.add(session_id, event_type, data, at=self._clock())

    async def _flush_events_periodically(self, tenant_id: str) -> None:
        while True:
            await asyncio.sleep(self._settings.event_flush_seconds)
            if self._events:
                self._flush_events(tenant_id)

    def _flush_events(self, tenant_id: str) -> None:
        """Write the pending events; if the database fails, they wait for the next flush."""
        try:
            with tenant_scope(tenant_id):
                written = self._events.flush(self._database)
        except Exception as error:
            logger.warning(
                "tenant %s: wave %s could not write %d session events yet: %r",
                tenant_id,
                self._owner,
                len(self._events),
                error,
            )
            return
        for event in written:
            self._publish(event)

    def _current_outcome(self, tenant_id: str, session_id: str, reason: str) -> SessionOutcome:
        with tenant_scope(tenant_id):
            return outcome_of(self._load_session(session_id), reason)


def _answered(messages: list[Message]) -> bool:
    """The last user message has an assistant reply, and every assistant message is final."""
    last_user = max((i for i, m in enumerate(messages) if m.info.role == "user"), default=None)
    if last_user is None:
        return False
    replies = [m for m in messages[last_user + 1 :] if m.info.role == "assistant"]
    return bool(replies) and all(m.info.completed for m in replies)


def _error_summary(error: dict[str, Any] | None) -> str:
    if not error:
        return "unknown error"
    data = error.get("data") or {}
    detail = data.get("message") or ""
    code = f" {data['statusCode']}" if data.get("statusCode") else ""
    return f"{error.get('name', 'Error')}{code}: {detail}".strip()
