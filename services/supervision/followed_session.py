"""What a wave knows about one session it follows, between its agent server's events."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from domain.session import Session, SessionStatus
from resources.opencode.errors import AgentSessionGone
from resources.opencode.models import Message, ServerEvent
from services.session_workspaces import SessionWorkspace
from services.supervision.agent_pool import AgentLink, HeldSlot
from services.supervision.agent_server import AgentEventStream
from services.turn_tracker import TurnTracker

SUPERVISED = frozenset({SessionStatus.RUNNING, SessionStatus.DEGRADED})
# A start is held at most this long for an agent that stays silent after its prompt.
FIRST_TURN_HOLD_SECONDS = 30.0


@dataclass
class FollowedSession:
    session: Session
    link: AgentLink
    tracker: TurnTracker
    # Where it works: its own workspace (its events on the server's stream of every directory),
    # else the link's (the tenant's worktree on the server, or the server's own).
    stream: AgentEventStream
    directory: str | None = None
    workspace: SessionWorkspace | None = None
    aborted_by_us: str | None = None
    lease_lost: bool = False  # the wave's last renewal did not hold it: check who has it
    # For its checkpoints: each step's text so far, the files its tools wrote, the steps done.
    step_texts: dict[str, str] = field(default_factory=dict)
    written_files: set[str] = field(default_factory=set)
    steps_recorded: set[str] = field(default_factory=set)
    # Follow-up messages sent to the agent (their delivery events may still be unwritten).
    delivered_messages: set[str] = field(default_factory=set)
    # Since when the agent has been idle with its answer unfinished and silent (None: it is not).
    unfinished_since: datetime | None = None
    # The agent's start slot, held from the start until the agent is seen answering.
    start_hold: HeldSlot | None = None
    prompted_at: datetime | None = None
    # Its place among the agent's workspaces in flight, when they are bounded.
    workspace_hold: HeldSlot | None = None

    def first_turn_begun(self) -> None:
        """The agent took the prompt up (or the hold ran out): its start is free for the next."""
        if self.start_hold is not None:
            self.start_hold.release()
            self.start_hold = None

    def workspace_done(self) -> None:
        """Its workspace released: the next waiting session may take one."""
        if self.workspace_hold is not None:
            self.workspace_hold.release()
            self.workspace_hold = None

    def first_turn_held_since(self, now: datetime) -> float:
        """Seconds the start has been held for a first answer (0 once released)."""
        if self.start_hold is None or self.prompted_at is None:
            return 0.0
        return (now - self.prompted_at).total_seconds()

    @classmethod
    def on(
        cls,
        session: Session,
        link: AgentLink,
        workspace: SessionWorkspace | None = None,
        stream: AgentEventStream | None = None,
    ) -> FollowedSession:
        return cls(
            session=session,
            link=link,
            tracker=TurnTracker(base=session.metrics),
            stream=stream or link.stream,
            directory=str(workspace.directory) if workspace else link.directory,
            workspace=workspace,
        )


def agent_answering(event: ServerEvent) -> bool:
    """The agent has taken its prompt up: its assistant message exists (or the turn ended)."""
    if event.type == "message.updated":
        return (event.properties.get("info") or {}).get("role") == "assistant"
    return event.type in ("session.idle", "session.error")


async def turn_finished(sup: FollowedSession) -> bool:
    """Idle is announced before the last assistant message is final: confirm from messages."""
    assert sup.session.agent_session_id is not None
    try:
        messages = await sup.link.client.messages(
            sup.session.agent_session_id, directory=sup.directory
        )
    except AgentSessionGone:
        return False
    for message in messages:
        sup.tracker.observe_message(message.info)
    sup.tracker.messages = messages
    return answered(messages)


def answered(messages: list[Message]) -> bool:
    """The last user message has an assistant reply, and every assistant message is final."""
    last_user = max((i for i, m in enumerate(messages) if m.info.role == "user"), default=None)
    if last_user is None:
        return False
    replies = [m for m in messages[last_user + 1 :] if m.info.role == "assistant"]
    return bool(replies) and all(m.info.completed for m in replies)
