"""One wave: a tenant's sessions supervised together, each to its end, by one lease owner.

A failing supervision never stops the others. With a `TopUp`, the wave also takes on the
tenant's new sessions while it has room, and ends after lingering with nothing to do.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import suppress
from datetime import datetime

from domain.agent import Agent
from domain.clock import utcnow
from domain.errors import NotFound
from domain.session import SessionStatus
from domain.supervision_policy import SupervisionSettings
from resources.database import Database, tenant_scope
from resources.settings import workspaces_dir
from services.session_outcome import SessionOutcome, outcome_of
from services.session_service import SessionService
from services.session_workspaces import SessionWorkspaces, WorkspaceLayout
from services.supervision.agent_pool import AgentPool, ExternalRoute
from services.supervision.agent_server import AgentServers
from services.supervision.external_dispatch import ExternalDispatch
from services.supervision.followed_session import SUPERVISED
from services.supervision.lease_keeper import LeaseKeeper
from services.supervision.session_follower import SessionFollower
from services.supervision.session_recorder import EventSink, SessionRecorder
from services.supervision.session_start import SessionStart
from services.supervision.wave_workspaces import WaveWorkspaces
from services.top_up import TopUp

logger = logging.getLogger(__name__)


class WaveSupervisor:
    """Supervises sessions of `tenant` leased to `owner` (the wave's id) on the agents' servers
    (`servers`: `resources.opencode.resource.OpenCodeResource`, or a fake in tests)."""

    def __init__(
        self,
        database: Database,
        servers: AgentServers,
        *,
        tenant: str,
        owner: str,
        publish: EventSink | None = None,
        settings: SupervisionSettings | None = None,
        clock: Callable[[], datetime] = utcnow,
        workspaces: SessionWorkspaces | None = None,
    ) -> None:
        """`workspaces`: where sessions get their own (default: `INDORCH_WORKSPACES_DIR`, git
        run as the current user, no tenant secrets)."""
        self._tenant = tenant
        self._owner = owner
        self._settings = settings = settings or SupervisionSettings()
        self._clock = clock
        self._recorder = SessionRecorder(database, tenant, owner, publish, clock)
        self._sessions = SessionService(database, publish=publish, clock=clock)
        self._pool = AgentPool(database, servers, tenant, self._recorder, settings, clock)
        self._leases = LeaseKeeper(database, tenant, owner, self._recorder, settings, clock)
        workspaces = workspaces or SessionWorkspaces(database, WorkspaceLayout(workspaces_dir()))
        self._workspaces = WaveWorkspaces(workspaces, self._recorder, settings)
        self._start = SessionStart(
            self._pool, self._recorder, owner, settings, clock, self._workspaces
        )
        self._external = ExternalDispatch(
            self._recorder, self._pool.load, self._pool.agent, owner, settings, clock
        )
        self._follower = SessionFollower(self._recorder, self._leases, settings, clock, workspaces)

    async def run(
        self, session_ids: list[str], top_up: TopUp | None = None
    ) -> list[SessionOutcome]:
        """Supervise every session to its end; one failing supervision never stops the others.

        With `top_up`, the wave also takes on the tenant's new sessions while it has room, and
        ends after lingering with nothing to do (`services.top_up`).
        """
        renewer = asyncio.create_task(self._leases.renew_periodically())
        flusher = asyncio.create_task(
            self._recorder.flush_periodically(self._settings.event_flush_seconds)
        )
        running: dict[asyncio.Task[SessionOutcome], str] = {}
        outcomes: list[SessionOutcome] = []

        def start(ids: list[str]) -> None:
            for session_id in ids:
                running[asyncio.create_task(self._supervise(session_id))] = session_id

        start(session_ids)
        loop = asyncio.get_running_loop()
        idle_since: float | None = None
        next_claim = loop.time()  # claim rounds (two transactions) at most every `every_seconds`
        try:
            while running or top_up is not None:
                if running:
                    done, _ = await asyncio.wait(
                        running,
                        timeout=max(0.0, next_claim - loop.time()) if top_up else None,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                    for task in done:
                        outcomes.append(self._outcome(running.pop(task), task))
                if top_up is None:
                    continue
                loop_time = loop.time()
                if running and loop_time < next_claim:
                    continue  # an ending's room waits for the next round (an empty wave not)
                next_claim = loop_time + top_up.every_seconds
                start(self._top_up(top_up, room=top_up.size - len(running)))
                if running:
                    idle_since = None
                    continue
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
            self._recorder.flush()
            await self._pool.close()
        return outcomes

    def _outcome(self, session_id: str, task: asyncio.Task[SessionOutcome]) -> SessionOutcome:
        error = task.exception()
        if error is None:
            return task.result()
        logger.error("supervision of %s failed: %r", session_id, error, exc_info=error)
        return self._recorder.current_outcome(session_id, repr(error))

    def _top_up(self, top_up: TopUp, room: int) -> list[str]:
        """The tenant's next due sessions that fit the wave's room and its runtime budget."""
        within = (top_up.until - self._clock()).total_seconds()
        if room <= 0 or within <= 0:
            return []
        try:
            with tenant_scope(self._tenant):
                return top_up.claim(room, within)
        except Exception as error:  # the next round tries again; the dispatcher is the fallback
            logger.warning("tenant %s: wave %s top-up failed: %r", self._tenant, self._owner, error)
            return []

    def _continue_follow_ups(self, session_id: str) -> None:
        """Messages queued as the session ended (too late for its agent) continue it as new
        sessions; the same message sent through the service at that moment makes the same one.
        Most sessions have none: one read says so, before the session is loaded."""
        if not self._recorder.queued_messages(session_id):
            return
        session = self._recorder.load(session_id)
        if session.settled:
            self._sessions.deliver_queued(self._tenant, session)

    def _external_agent_of(self, agent_id: str | None) -> Agent | None:
        """The session's agent if it is an external one (EAP), whose sessions are waited on."""
        if agent_id is None:
            return None
        try:
            agent = self._pool.agent(agent_id)
        except NotFound:
            return None
        return agent if agent.external else None

    async def _supervise(self, session_id: str) -> SessionOutcome:
        with tenant_scope(self._tenant):
            session = self._recorder.load(session_id)
            if session.status is SessionStatus.QUEUED and session.lease_owner == self._owner:
                supervision = await self._start.start(session)
                if isinstance(supervision, ExternalRoute):
                    outcome = await self._external.run(session, supervision.agent)
                    self._continue_follow_ups(session_id)
                    return outcome
            elif session.status in SUPERVISED:
                external = self._external_agent_of(session.agent_id)
                if external is not None:
                    adopted = await self._external.adopt(session, external)
                    return adopted or outcome_of(session, "not ours to supervise")
                supervision = await self._start.adopt(session)
            else:
                return outcome_of(session, "not ours to supervise")
            if supervision is None:
                return outcome_of(self._recorder.load(session_id), "ended before it was followed")
            try:
                with self._leases.following(supervision):
                    outcome = await self._follower.follow(supervision)
                self._continue_follow_ups(session_id)
                return outcome
            finally:
                supervision.first_turn_begun()
                supervision.stream.unsubscribe(supervision.session.agent_session_id or "")
                try:
                    await self._workspaces.end(supervision)
                finally:
                    supervision.workspace_done()  # after: the next session takes the slot warm
