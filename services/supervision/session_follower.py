"""Following one session on its agent's event stream to its end, and enforcing its limits.

Between events (at least every `poll_seconds`) the limits are checked: past its deadline the
agent is aborted and the session ends TIMEOUT; past its cost cap, STOPPED; its server
unreachable for `orphan_after_seconds`, ORPHANED; taken over by another wave, let go. A
permission request is answered by the session's policy; an idle agent whose last answer is final
gets the next queued follow-up message as a new turn, else completes the session (or fails it with
the agent's error).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from domain.checkpoint import STEP_EVENT, step_checkpoint_data
from domain.follow_up import DELIVERED_EVENT
from domain.session import SessionStatus
from domain.session_permissions import permission_policy
from domain.supervision_policy import SupervisionSettings
from resources.opencode.errors import AgentServerError
from resources.opencode.models import ServerEvent
from services.session_outcome import SessionOutcome, outcome_of
from services.session_workspaces import SessionWorkspaces, WorkspaceFailed
from services.supervision.followed_session import (
    FIRST_TURN_HOLD_SECONDS,
    SUPERVISED,
    FollowedSession,
    agent_answering,
    turn_finished,
)
from services.supervision.lease_keeper import LeaseKeeper
from services.supervision.session_recorder import SessionRecorder
from services.turn_tracker import WRITING_TOOLS, workspace_relative

logger = logging.getLogger(__name__)
DIFF_RETRY_SECONDS = 0.3


class SessionFollower:
    def __init__(
        self,
        recorder: SessionRecorder,
        leases: LeaseKeeper,
        settings: SupervisionSettings,
        clock: Callable[[], datetime],
        workspaces: SessionWorkspaces,
    ) -> None:
        self._workspaces = workspaces
        self._recorder = recorder
        self._leases = leases
        self._settings = settings
        self._clock = clock

    async def follow(self, sup: FollowedSession) -> SessionOutcome:
        assert sup.session.agent_session_id is not None
        queue = sup.stream.subscribe(sup.session.agent_session_id)
        while True:
            if sup.tracker.idle_seen:
                if await turn_finished(sup):
                    sup.unfinished_since = None
                    if await self._send_follow_up(sup):
                        continue
                    return await self._complete(sup)
                sup.unfinished_since = sup.unfinished_since or self._clock()
            sup.tracker.idle_seen = False
            event = await self._next_event(queue)
            answering = event is not None and agent_answering(event)
            if answering or sup.first_turn_held_since(self._clock()) >= FIRST_TURN_HOLD_SECONDS:
                sup.first_turn_begun()  # its agent's start is free for the next session
            if event is not None:
                sup.unfinished_since = None  # the agent is at it
                self._observe(sup, event)
            elif await self._turn_interrupted(sup):
                return self._recorder.finish(
                    sup.session,
                    SessionStatus.ORPHANED,
                    "agent turn interrupted: idle with its answer unfinished for "
                    f"{self._settings.interrupted_turn_seconds:.0f} s (its server restarted?)",
                    sup,
                )
            ended = await self._check_limits(sup)
            if ended is not None:
                return ended

    async def _turn_interrupted(self, sup: FollowedSession) -> bool:
        """Idle, its answer unfinished, silent for `interrupted_turn_seconds`, and its messages
        still say so: the turn died with its server (a restarted OpenCode server lists the
        session, idle, and never finishes the answer). Idle is announced before the answer is
        final in a turn that ends well, hence the wait and the second look."""
        since = sup.unfinished_since
        if since is None:
            return False
        waited = (self._clock() - since).total_seconds()
        if waited < self._settings.interrupted_turn_seconds:
            return False
        if await turn_finished(sup):
            sup.tracker.idle_seen = True  # it did end well: completed on the next round
            sup.unfinished_since = None
            return False
        return True

    async def _send_follow_up(self, sup: FollowedSession) -> bool:
        """The turn ended well: the oldest follow-up message queued meanwhile becomes the
        agent's next turn (True), or there is none and the session completes (False). One the
        agent server refuses stays queued: it continues the session once that has ended."""
        if sup.tracker.error or sup.aborted_by_us or sup.session.agent_session_id is None:
            return False
        waiting = [
            event
            for event in self._recorder.queued_messages(sup.session.id)
            if event.data.get("message_id") not in sup.delivered_messages
        ]
        if not waiting:
            return False
        message_id, text = str(waiting[0].data["message_id"]), str(waiting[0].data["text"])
        try:
            await sup.link.client.prompt_async(
                sup.session.agent_session_id,
                text,
                agent=sup.link.agent.opencode_agent,
                model=sup.session.model or sup.link.agent.model,
                directory=sup.directory,
            )
        except AgentServerError as error:
            logger.warning("follow-up %s of %s not sent: %s", message_id, sup.session.id, error)
            return False
        sup.delivered_messages.add(message_id)
        self._recorder.append(
            sup.session.id,
            DELIVERED_EVENT,
            {"message_id": message_id, "turn": len(sup.delivered_messages) + 1},
        )
        sup.tracker.idle_seen = False
        return True

    async def _next_event(self, queue: asyncio.Queue[ServerEvent]) -> ServerEvent | None:
        """The next event, or None after `poll_seconds`. Not `asyncio.wait_for`: on Python
        3.11 it returns an event that arrives together with the task's cancellation and drops
        the cancellation, so a cancelled wave waited forever on a session that went on."""
        try:
            async with asyncio.timeout(self._settings.poll_seconds):
                return await queue.get()
        except TimeoutError:
            return None

    def _observe(self, sup: FollowedSession, event: ServerEvent) -> None:
        session_id = sup.session.id
        append = self._recorder.append
        match event.type:
            case "message.updated":
                info = event.properties.get("info") or {}
                if info.get("role") == "assistant":
                    sup.tracker.observe_message_dict(info)
                    # A step that ended in an error (refused, aborted) is no progress to resume.
                    if (info.get("time") or {}).get("completed") and not info.get("error"):
                        self._record_step(sup, str(info.get("id") or ""))
            case "session.status":
                status = event.status
                if status is not None and status.type == "retry":
                    sup.tracker.retries += 1
                    append(
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
                append(session_id, "agent.error", {"error": error_summary(event.error)})
            case "message.part.updated":
                part = event.properties.get("part") or {}
                self._note_step_part(sup, part)
                if part.get("type") == "tool" and (part.get("state") or {}).get("status") in {
                    "completed",
                    "error",
                }:
                    sup.tracker.tool_calls += 1
                    append(
                        session_id,
                        "agent.tool",
                        {"tool": part.get("tool"), "status": part["state"]["status"]},
                    )
            case "permission.asked":
                asyncio.get_running_loop().create_task(self._answer_permission(sup, event))

    def _note_step_part(self, sup: FollowedSession, part: dict[str, Any]) -> None:
        """What a checkpoint of the step will say: its text, the files written so far."""
        if part.get("type") == "text" and part.get("messageID"):
            sup.step_texts[str(part["messageID"])] = str(part.get("text") or "")
        state = part.get("state") or {}
        if (
            part.get("type") == "tool"
            and part.get("tool") in WRITING_TOOLS
            and state.get("status") == "completed"
        ):
            path = (state.get("input") or {}).get("filePath")
            if isinstance(path, str):
                sup.written_files.add(workspace_relative(path, sup.directory))

    def _record_step(self, sup: FollowedSession, message_id: str) -> None:
        """A completed agent step: its checkpoint (once per step), written with the next flush."""
        if not message_id or message_id in sup.steps_recorded:
            return
        sup.steps_recorded.add(message_id)
        metrics = sup.tracker.metrics()
        data = step_checkpoint_data(
            attempt=sup.session.retry_count,
            message_id=message_id,
            text=sup.step_texts.get(message_id, ""),
            files_changed=sorted(sup.written_files),
            tokens_in=metrics.tokens_in,
            tokens_out=metrics.tokens_out,
        )
        self._recorder.append(sup.session.id, STEP_EVENT, data)

    async def _answer_permission(self, sup: FollowedSession, event: ServerEvent) -> None:
        """Policy: the agent profile's `allow` (the operator's), else the session's reject or
        wait (until the deadline); `domain.session_permissions`."""
        policy = permission_policy(
            sup.session.agent_config.get("permission"), sup.link.agent.permission_policy
        )
        request_id = event.properties.get("id")
        self._recorder.append(
            sup.session.id, "agent.permission", {"policy": policy, "request": request_id}
        )
        if policy in {"allow", "reject"} and request_id:
            reply = "once" if policy == "allow" else "reject"
            await sup.link.client.reply_permission(request_id, reply, directory=sup.directory)

    async def _check_limits(self, sup: FollowedSession) -> SessionOutcome | None:
        now = self._clock()
        session = sup.session
        finish = self._recorder.finish
        deadline = session.deadline
        if deadline is not None and now >= deadline:
            await self._abort(sup, "deadline")
            await self._collect_diff(sup)
            return finish(
                session,
                SessionStatus.TIMEOUT,
                f"ran past its max duration of {session.max_duration_seconds} s",
                sup,
            )
        breach = session.cost_cap.breach(sup.tracker.metrics()) if session.cost_cap else None
        if breach:
            await self._abort(sup, "cost cap")
            await self._collect_diff(sup)
            return finish(session, SessionStatus.STOPPED, breach, sup)
        if sup.stream.seconds_down() > self._settings.orphan_after_seconds:
            try:
                await sup.link.client.health()
            except AgentServerError as error:  # its link unhealthy until its stream reconnects
                return finish(
                    session, SessionStatus.ORPHANED, f"agent server lost: {error.detail}", sup
                )
        return self._leases.taken_over(sup)

    async def _complete(self, sup: FollowedSession) -> SessionOutcome:
        await self._collect_diff(sup)
        error = sup.tracker.error
        session = sup.session
        if error and error.get("name") == "MessageAbortedError" and not sup.aborted_by_us:
            current = self._recorder.load(session.id)
            if current.status not in SUPERVISED:
                return outcome_of(current, f"{current.status.value} while running")
        if error:
            return self._recorder.finish(session, SessionStatus.FAILED, error_summary(error), sup)
        try:
            delivered = await self._deliver(sup)
        except WorkspaceFailed as failed:
            return self._recorder.finish(session, SessionStatus.FAILED, failed.reason, sup)
        return self._recorder.finish(
            session, SessionStatus.COMPLETED, "agent finished", sup, delivered=delivered
        )

    async def _deliver(self, sup: FollowedSession) -> dict[str, Any]:
        """A session on a repository: its work committed, pushed and its patch, for its result."""
        if sup.workspace is None or sup.workspace.repository is None:
            return {}
        agent = sup.link.agent
        delivered = await self._workspaces.deliver(
            sup.session, sup.workspace, agent.name, f"{agent.id}@agents.indorch"
        )
        self._recorder.append(
            sup.session.id,
            "workspace.pushed",
            {k: delivered[k] for k in ("repository", "branch", "base", "commit")},
        )
        return delivered

    async def _collect_diff(self, sup: FollowedSession) -> None:
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
                    directory=sup.directory,
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

    async def _abort(self, sup: FollowedSession, why: str) -> None:
        sup.aborted_by_us = why
        assert sup.session.agent_session_id is not None
        try:
            await sup.link.client.abort(sup.session.agent_session_id, directory=sup.directory)
        except AgentServerError as error:
            logger.warning("abort of %s failed: %s", sup.session.id, error)


def error_summary(error: dict[str, Any] | None) -> str:
    if not error:
        return "unknown error"
    data = error.get("data") or {}
    detail = data.get("message") or ""
    code = f" {data['statusCode']}" if data.get("statusCode") else ""
    return f"{error.get('name', 'Error')}{code}: {detail}".strip()
