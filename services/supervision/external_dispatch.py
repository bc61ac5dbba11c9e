"""Sessions on external agents (EAP v1): the assignment POSTed to the agent, then the wait for
the result it posts back through the API.

Why a path of its own rather than another implementation of the `AgentServer` port: that port
is OpenCode's conversation (sessions, prompts, an event stream, messages, diffs, permission
requests), which an external agent does not have; faking it would invent events the agent never
sent. An external agent's contract is smaller: take a task, answer later. So the wave routes to
it by the same rules (`domain.routing`, with a fresh heartbeat), and then, instead of following
an event stream, this module

1. records the session RUNNING on the agent under a new assignment id (before the POST, so a
   result arriving at once finds it assigned);
2. POSTs the `TaskAssignment` to the agent's endpoint, signed with the token's hash
   (`domain.signed_payload`), waiting `external_timeout_seconds`, tried `external_attempts`
   times with a doubling pause on no answer, 408, 429 or 5xx (the same assignment id each
   time, so the agent can drop a repeat); refused or never answered, the session FAILS
   (retryable: the retry sensor routes it again);
3. waits, reading the session every `poll_seconds`, until the result ended it
   (`services.external_agents`), its deadline passed (TIMEOUT), or the agent went silent past
   its heartbeat TTL or was removed (ORPHANED: the retry sensor sends it elsewhere).

The wave keeps the lease meanwhile (its renewals cover every session it owns); a wave that
adopts such a session after a crash only waits (`adopt`): the assignment was already sent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import httpx

from domain.agent import Agent
from domain.checkpoint import prompt_for_attempt
from domain.errors import ConcurrentModification, NotFound
from domain.external_agent import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    TaskAssignment,
    new_assignment_id,
    silent_for,
)
from domain.session import Session, SessionStatus
from domain.signed_payload import signature
from domain.supervision_policy import SupervisionSettings
from services.agent_load import AgentLoadView
from services.session_outcome import SessionOutcome, outcome_of
from services.supervision.followed_session import SUPERVISED
from services.supervision.session_recorder import SessionRecorder

logger = logging.getLogger(__name__)
RESULT_PATH = "/api/v1/eap/sessions/{session_id}/result"
RETRIED_STATUSES = frozenset({408, 429})


class ExternalDispatch:
    def __init__(
        self,
        recorder: SessionRecorder,
        load: AgentLoadView,
        read_agent: Callable[[str], Agent],
        owner: str,
        settings: SupervisionSettings,
        clock: Callable[[], datetime],
    ) -> None:
        self._recorder = recorder
        self._load = load
        self._read_agent = read_agent
        self._owner = owner
        self._settings = settings
        self._clock = clock

    async def run(self, session: Session, agent: Agent) -> SessionOutcome:
        assignment_id = new_assignment_id()
        session.agent_id = agent.id
        session.agent_session_id = assignment_id
        session.lease_expires_at = self._clock() + self._settings.lease
        try:
            self._recorder.save_transition(
                session,
                SessionStatus.RUNNING,
                f"assigned to external agent {agent.name} as {assignment_id}",
            )
        except BaseException:
            self._load.start_failed(agent.id)
            raise
        self._load.started(agent.id)
        failure = await self._post(self._assignment(session, assignment_id), agent)
        if failure is not None:
            current = self._recorder.load(session.id)
            if current.status not in SUPERVISED:  # it ended meanwhile (a result, a stop)
                return outcome_of(current, f"{current.status.value} while being assigned")
            return self._recorder.finish(
                current, SessionStatus.FAILED, f"external agent {agent.name}: {failure}"
            )
        self._recorder.append(
            session.id, "agent.assigned", {"agent_id": agent.id, "assignment_id": assignment_id}
        )
        return await self._await_result(session.id, agent.id)

    async def adopt(self, session: Session, agent: Agent) -> SessionOutcome | None:
        """Take over the wait for a session whose wave is gone (None: not ours to take)."""
        now = self._clock()
        if not session.lease_expired(now) and session.lease_owner != self._owner:
            return None
        session.lease_owner = self._owner
        session.lease_expires_at = now + self._settings.lease
        try:
            self._recorder.save(session)
        except ConcurrentModification:
            return None  # another wave adopted it first, or it ended
        self._recorder.append(session.id, "session.adopted", {"wave": self._owner})
        return await self._await_result(session.id, agent.id)

    def _assignment(self, session: Session, assignment_id: str) -> TaskAssignment:
        return TaskAssignment(
            assignment_id=assignment_id,
            session_id=session.id,
            tenant_id=session.tenant_id,
            title=session.title,
            prompt=prompt_for_attempt(
                session.initial_prompt, session.checkpoints, session.retry_count
            ),
            model=session.model,
            required_capabilities=list(session.required_capabilities),
            deadline=session.deadline,
            result_path=RESULT_PATH.format(session_id=session.id),
        )

    async def _post(self, assignment: TaskAssignment, agent: Agent) -> str | None:
        """None once the agent accepted the assignment (2xx); else why it was not delivered."""
        body = assignment.model_dump_json().encode()
        key = agent.token_hash or ""
        pause = self._settings.external_retry_seconds
        failure = "not tried"
        async with httpx.AsyncClient(
            timeout=self._settings.external_timeout_seconds, follow_redirects=False
        ) as client:
            for attempt in range(1, self._settings.external_attempts + 1):
                if attempt > 1:
                    await asyncio.sleep(pause)
                    pause *= 2
                sent_at = int(time.time())
                headers = {
                    "Content-Type": "application/json",
                    TIMESTAMP_HEADER: str(sent_at),
                    SIGNATURE_HEADER: signature(key, sent_at, body),
                }
                try:
                    answer = await client.post(agent.server_url, content=body, headers=headers)
                except httpx.HTTPError as error:
                    failure = f"no answer ({type(error).__name__})"
                else:
                    if answer.is_success:
                        return None
                    failure = f"answered {answer.status_code}"
                    if answer.status_code < 500 and answer.status_code not in RETRIED_STATUSES:
                        return failure  # refused: trying again would be refused again
                logger.info(
                    "tenant %s session %s: assignment to %s, attempt %d: %s",
                    assignment.tenant_id,
                    assignment.session_id,
                    agent.id,
                    attempt,
                    failure,
                )
        return f"{failure} after {self._settings.external_attempts} attempts"

    async def _await_result(self, session_id: str, agent_id: str) -> SessionOutcome:
        ttl = timedelta(seconds=self._settings.external_heartbeat_ttl_seconds)
        while True:
            await asyncio.sleep(self._settings.poll_seconds)
            current = self._recorder.load(session_id)
            if current.status not in SUPERVISED or current.lease_owner != self._owner:
                return outcome_of(current, f"{current.status.value}: external agent's result")
            now = self._clock()
            ended: tuple[SessionStatus, str] | None = None
            if current.deadline is not None and now >= current.deadline:
                ended = (
                    SessionStatus.TIMEOUT,
                    f"ran past its max duration of {current.max_duration_seconds} s",
                )
            else:
                try:
                    silent = silent_for(self._read_agent(agent_id), now, ttl)
                except NotFound:
                    ended = (SessionStatus.ORPHANED, "external agent removed")
                else:
                    if silent is not None:
                        ended = (
                            SessionStatus.ORPHANED,
                            f"external agent silent for {silent.total_seconds():.0f} s",
                        )
            if ended is not None:
                return self._recorder.finish(current, *ended)
