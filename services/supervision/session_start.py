"""Taking a session on: start it on an agent (create the agent session, send the prompt), or adopt
one whose wave died: still running on its agent, it is followed on; its agent session gone, it
becomes ORPHANED and the retry sensor sends it elsewhere."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

from domain.checkpoint import prompt_for_attempt
from domain.errors import ConcurrentModification
from domain.session import Session, SessionStatus
from domain.session_permissions import session_rules
from domain.supervision_policy import SupervisionSettings
from resources.opencode.errors import AgentServerError
from services.session_workspaces import SessionWorkspace, recorded_workspace
from services.supervision.agent_pool import AgentLink, AgentPool, ExternalRoute
from services.supervision.followed_session import FollowedSession, turn_finished
from services.supervision.session_recorder import SessionRecorder
from services.supervision.wave_workspaces import WaveWorkspaces

CONTINUE_PROMPT = "Continue the task from where you stopped."
PROMPT_CONFIRM_ATTEMPTS = 3  # after a prompt_async without an answer
PROMPT_CONFIRM_PAUSE_SECONDS = 2.0


class SessionStart:
    def __init__(
        self,
        pool: AgentPool,
        recorder: SessionRecorder,
        owner: str,
        settings: SupervisionSettings,
        clock: Callable[[], datetime],
        workspaces: WaveWorkspaces,
    ) -> None:
        self._workspaces = workspaces
        self._pool = pool
        self._recorder = recorder
        self._owner = owner
        self._settings = settings
        self._clock = clock

    async def start(self, session: Session) -> FollowedSession | ExternalRoute | None:
        """The session started and followed on its agent's server; or the external agent it was
        routed to (the wave dispatches it over EAP); None when it ended or was handed back."""
        link = await self._pool.route(session)
        if link is None:  # handed back: no agent offers what it needs
            return None
        if isinstance(link, ExternalRoute):
            return link
        # One of the agent's workspaces in flight, when bounded: the rest wait here.
        room = await link.hold_workspace() if self._workspaces.wanted(session) else None
        supervision = None
        try:
            supervision = await self._start_in_workspace(link, session)
        finally:
            if supervision is None and room is not None:
                room.release()
        if supervision is not None:
            supervision.workspace_hold = room
        return supervision

    async def _start_in_workspace(
        self, link: AgentLink, session: Session
    ) -> FollowedSession | None:
        if not self._workspaces.wanted(session):
            # In the link's directory (the tenant's worktree, or the server's own): its instance
            # is one for all such sessions, nothing to set up per start, so no start is paced.
            return await self._start_on(link, session, None)
        workspace = None
        if session.repository is not None:
            # Before taking one of the agent's start slots: a setup script may run for minutes.
            workspace = await self._workspaces.prepare(session, link.agent.id)
            if workspace is None:  # failed, and recorded as such
                self._pool.load.start_failed(link.agent.id)
                return None
        held = await link.starting.hold()
        supervision = None
        try:
            if workspace is None:
                # A scratch slot once a start is free: one a session freed meanwhile is taken,
                # its server's instance warm, rather than a new directory per waiting session.
                workspace = await self._workspaces.prepare(session, link.agent.id)
                if workspace is None:
                    self._pool.load.start_failed(link.agent.id)
                    return None
            supervision = await self._start_on(link, session, workspace)
        finally:
            if supervision is None:
                held.release()
        if supervision is None:  # the start failed, and was recorded as such
            return None
        # Held until the agent answers: the server sets the directory's instance up meanwhile.
        supervision.start_hold, supervision.prompted_at = held, self._clock()
        return supervision

    async def _start_on(
        self, link: AgentLink, session: Session, workspace: SessionWorkspace | None
    ) -> FollowedSession | None:
        load = self._pool.load
        directory = str(workspace.directory) if workspace else link.directory
        try:
            agent_session = await link.client.create_session(
                f"{session.id} {session.title}",
                directory=directory,
                permission=session_rules(),
            )
        except AgentServerError as error:
            load.start_failed(link.agent.id)
            await self._workspaces.release(session, workspace, link)
            self._recorder.finish(
                session, SessionStatus.FAILED, f"agent server error: {error.detail}"
            )
            return None
        session.agent_id = link.agent.id
        session.agent_session_id = agent_session.id
        if directory:
            session.metadata = {**session.metadata, "agent_directory": directory}
        now = self._clock()
        session.lease_expires_at = now + self._settings.lease
        try:
            self._recorder.save_transition(
                session, SessionStatus.RUNNING, f"on {link.agent.name} as {agent_session.id}"
            )
        except BaseException:
            load.start_failed(link.agent.id)
            raise
        load.started(link.agent.id)
        stream = await self._workspaces.stream(link, workspace)
        stream.subscribe(agent_session.id, directory)
        supervision = FollowedSession.on(session, link, workspace, stream)
        try:
            await link.client.prompt_async(
                agent_session.id,
                prompt_for_attempt(
                    session.initial_prompt, session.checkpoints, session.retry_count
                ),
                agent=link.agent.opencode_agent,
                model=session.model or link.agent.model,
                directory=directory,
            )
        except AgentServerError as error:
            # No answer is not a refusal: an overloaded server may have queued the prompt.
            if error.status_code is None and await self._prompt_arrived(
                link, agent_session.id, directory
            ):
                self._recorder.append(
                    session.id,
                    "agent.prompted",
                    {"agent_session_id": agent_session.id, "confirmed_after": error.detail},
                )
                return supervision
            self._recorder.finish(
                session, SessionStatus.FAILED, f"agent server error: {error.detail}", supervision
            )
            await self._workspaces.end(supervision)
            return None
        self._recorder.append(session.id, "agent.prompted", {"agent_session_id": agent_session.id})
        return supervision

    async def _prompt_arrived(
        self, link: AgentLink, agent_session_id: str, directory: str | None
    ) -> bool:
        """Whether the agent session holds our prompt (a user message), asked a few times."""
        for attempt in range(PROMPT_CONFIRM_ATTEMPTS):
            if attempt:
                await asyncio.sleep(PROMPT_CONFIRM_PAUSE_SECONDS)
            try:
                messages = await link.client.messages(agent_session_id, directory=directory)
            except AgentServerError:
                continue
            if any(message.info.role == "user" for message in messages):
                return True
        return False

    async def adopt(self, session: Session) -> FollowedSession | None:
        """Take over a session whose supervisor is gone; ORPHANED if its agent session is too."""
        now = self._clock()
        if not session.lease_expired(now) and session.lease_owner != self._owner:
            return None
        if not (session.agent_id and session.agent_session_id):
            self._recorder.finish(session, SessionStatus.ORPHANED, "no agent session to adopt")
            return None
        agent = self._pool.agent(session.agent_id)
        link = await self._pool.link(agent)
        workspace = recorded_workspace(session)
        directory = str(workspace.directory) if workspace else link.directory
        session.lease_owner = self._owner
        session.lease_expires_at = now + self._settings.lease
        try:
            self._recorder.save(session)
        except ConcurrentModification:
            return None  # another wave adopted it first
        stream = await self._workspaces.stream(link, workspace)
        stream.subscribe(session.agent_session_id, directory)
        supervision = FollowedSession.on(session, link, workspace, stream)
        try:
            messages = await link.client.messages(session.agent_session_id, directory=directory)
        except AgentServerError as error:
            stream.unsubscribe(session.agent_session_id)
            self._recorder.finish(
                session, SessionStatus.ORPHANED, f"agent session lost: {error.detail}"
            )
            await self._workspaces.end(supervision)
            return None
        for message in messages:
            supervision.tracker.observe_message(message.info)
        self._recorder.append(session.id, "session.adopted", {"wave": self._owner})
        if session.metadata.get("resume_requested"):
            session.metadata = {
                k: v for k, v in session.metadata.items() if k != "resume_requested"
            }
            self._recorder.save(session)
            await link.client.prompt_async(
                session.agent_session_id,
                CONTINUE_PROMPT,
                agent=agent.opencode_agent,
                directory=directory,
            )
        elif await turn_finished(supervision) or not await self._at_work(supervision):
            # Idle: finished (completed next), or its turn died with its server, whose restart
            # announced no idle to anyone (the follower's wait for an interrupted turn starts).
            supervision.tracker.idle_seen = True
        return supervision

    async def _at_work(self, supervision: FollowedSession) -> bool:
        """Whether the agent session's turn is in progress on its server (busy or retrying); an
        unreachable server is taken as at work (the follower's wait for a lost server decides)."""
        agent_session_id = supervision.session.agent_session_id
        try:
            statuses = await supervision.link.client.statuses(directory=supervision.directory)
        except AgentServerError:
            return True
        status = statuses.get(agent_session_id or "")
        return status is not None and status.type != "idle"
