"""A wave's side of its sessions' own workspaces: made before the agent session, followed on a
stream of their own directory, and gone (with the server's instance for that directory) when
the session ends, unless the directory is a scratch slot kept warm for the next session.

OpenCode keeps an instance per directory it was asked about (tens of MB of the server's memory): a
session's directory is disposed of on the server when the session ends, and its worktree removed;
a scratch slot kept for the next session keeps its instance (`workspace_slots`). A wave that stops
while its session runs on leaves both: the wave that adopts it needs them. Such a session's events
come on the server's stream of every directory, one per server in the process, shared by every
wave (the link's own stream serves the sessions in the link's directory).
"""

from __future__ import annotations

import logging

from domain.session import Session, SessionStatus
from domain.supervision_policy import SupervisionSettings
from resources.opencode.errors import AgentServerError
from services.session_workspaces import (
    WORKSPACE_KEY,
    SessionWorkspace,
    SessionWorkspaces,
    WorkspaceFailed,
)
from services.supervision.agent_pool import AgentLink
from services.supervision.agent_server import AgentEventStream
from services.supervision.followed_session import SUPERVISED, FollowedSession
from services.supervision.session_recorder import SessionRecorder

logger = logging.getLogger(__name__)
OUTPUT_LINES_PER_EVENT = 20
SETUP_EVENT = "workspace.setup"


class WaveWorkspaces:
    def __init__(
        self,
        workspaces: SessionWorkspaces,
        recorder: SessionRecorder,
        settings: SupervisionSettings,
    ) -> None:
        self._workspaces = workspaces
        self._recorder = recorder
        self._settings = settings

    @property
    def service(self) -> SessionWorkspaces:
        return self._workspaces

    def wanted(self, session: Session) -> bool:
        """On a repository always; a scratch one of its own when the settings say so."""
        return session.repository is not None or self._settings.session_workspaces

    async def prepare(self, session: Session, agent_id: str) -> SessionWorkspace | None:
        """Its workspace for the agent it was routed to (inside that agent's managed runtime
        when it is one), recorded in its metadata (saved with its start); None when it could
        not be made: the session has then ended FAILED, saying why."""
        output = _SetupOutput(self._recorder, session.id)
        try:
            workspace = await self._workspaces.prepare(session, output.line, agent_id)
        except WorkspaceFailed as failed:
            output.flush()
            self._recorder.finish(
                session, SessionStatus.FAILED, failed.reason, retryable=failed.retryable
            )
            return None
        output.flush()
        session.metadata = {**session.metadata, WORKSPACE_KEY: workspace.record()}
        self._recorder.append(session.id, "workspace.ready", workspace.record())
        return workspace

    async def stream(self, link: AgentLink, workspace: SessionWorkspace | None) -> AgentEventStream:
        """The stream its events come on: the server's stream of every directory (shared by the
        process's waves) when it works in a workspace of its own, else the link's (subscribe it
        with its directory)."""
        if workspace is None:
            return link.stream
        return await link.workspaces_stream()

    async def end(self, sup: FollowedSession) -> None:
        """After its supervision, once the session ended (not when the wave stops under it):
        the server's instance of its directory and its worktree gone."""
        if sup.workspace is None or sup.session.status in SUPERVISED:
            return
        await self.release(sup.session, sup.workspace, sup.link)

    async def release(
        self, session: Session, workspace: SessionWorkspace | None, link: AgentLink
    ) -> None:
        if workspace is None:
            return

        async def dispose() -> None:
            try:
                await link.client.dispose_instance(str(workspace.directory))
            except AgentServerError as error:
                logger.info(
                    "session %s: instance of its directory not disposed: %s", session.id, error
                )

        try:
            await self._workspaces.release(session, workspace, dispose)
        except Exception as error:  # left on disk; the next attempt starts by removing it
            logger.warning("session %s: workspace not removed: %r", session.id, error)


class _SetupOutput:
    """The setup script's output as session events, a few lines each."""

    def __init__(self, recorder: SessionRecorder, session_id: str) -> None:
        self._recorder = recorder
        self._session_id = session_id
        self._lines: list[str] = []

    def line(self, text: str) -> None:
        self._lines.append(text)
        if len(self._lines) >= OUTPUT_LINES_PER_EVENT:
            self.flush()

    def flush(self) -> None:
        if self._lines:
            self._recorder.append(self._session_id, SETUP_EVENT, {"output": "".join(self._lines)})
            self._lines = []
