"""What a wave knows about one session it follows, between its agent server's events."""

from __future__ import annotations

from dataclasses import dataclass, field

from domain.session import Session, SessionStatus
from resources.opencode.errors import AgentSessionGone
from resources.opencode.models import Message
from services.supervision.agent_pool import AgentLink
from services.turn_tracker import TurnTracker

SUPERVISED = frozenset({SessionStatus.RUNNING, SessionStatus.DEGRADED})


@dataclass
class FollowedSession:
    session: Session
    link: AgentLink
    tracker: TurnTracker
    aborted_by_us: str | None = None
    lease_lost: bool = False  # the wave's last renewal did not hold it: check who has it
    # For its checkpoints: each step's text so far, the files its tools wrote, the steps done.
    step_texts: dict[str, str] = field(default_factory=dict)
    written_files: set[str] = field(default_factory=set)
    steps_recorded: set[str] = field(default_factory=set)

    @classmethod
    def on(cls, session: Session, link: AgentLink) -> FollowedSession:
        return cls(session=session, link=link, tracker=TurnTracker(base=session.metrics))


async def turn_finished(sup: FollowedSession) -> bool:
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
    return answered(messages)


def answered(messages: list[Message]) -> bool:
    """The last user message has an assistant reply, and every assistant message is final."""
    last_user = max((i for i, m in enumerate(messages) if m.info.role == "user"), default=None)
    if last_user is None:
        return False
    replies = [m for m in messages[last_user + 1 :] if m.info.role == "assistant"]
    return bool(replies) and all(m.info.completed for m in replies)
