"""An in-memory agent server behind the supervisor's port (`AgentServers`), for unit tests only.

One `FakeServer` per URL holds its agent sessions (messages, diff), worktrees, event streams and
permission replies. What its agent does with a prompt is the next `Turn` the test queued (by
default: answer at once): answer, write files, spend tokens and dollars, ask a permission first,
or keep working until aborted. Its events reach the streams scoped to the session's directory, as
OpenCode's `/event` does, and the streams of every directory (`/global/event`); a killed server
refuses every call and its streams go down, measured on the test's clock. `FakeAgentControl` is
the sync `AgentControl` the session service aborts with.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from domain.agent import Agent
from domain.clock import utcnow
from resources.opencode.errors import AgentServerError, AgentSessionGone
from resources.opencode.models import (
    AgentSession,
    FileDiff,
    Health,
    Message,
    MessageInfo,
    ServerEvent,
    SessionStatus,
    Worktree,
)

_ids = itertools.count(1)


def _new_id(prefix: str) -> str:
    return f"{prefix}_{next(_ids):06d}"


class FakeClock:
    """The supervisor's clock, moved by the test: deadlines and leases pass in no time."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass(frozen=True)
class Turn:
    """What the agent does with one prompt."""

    answer: str = "done"
    writes: tuple[str, ...] = ()  # workspace-relative files it writes (one tool call each)
    tokens_in: int = 100
    tokens_out: int = 20
    cost_usd: float = 0.01
    finishes: bool = True  # False: it keeps working until aborted
    asks: str | None = None  # a permission it asks for first; it waits for the reply
    error: str | None = None  # the model refuses: the step ends with this error (session.error)


@dataclass
class AgentSessionState:
    id: str
    directory: str
    messages: list[Message] = field(default_factory=list)
    diff: list[FileDiff] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    aborted: bool = False


@dataclass
class _Waiting:
    session: AgentSessionState
    turn: Turn
    message_id: str


class FakeServer:
    def __init__(self, url: str, clock: FakeClock) -> None:
        self.url = url
        self.clock = clock
        self.up = True
        self.sessions: dict[str, AgentSessionState] = {}
        self.worktree_dirs: list[str] = []
        self.turns: deque[Turn] = deque()
        self.permission_replies: dict[str, str] = {}
        self.session_permissions: dict[str, list[dict[str, str]]] = {}  # as created
        self.disposed: list[str] = []  # directories whose instance was disposed of
        self.streams: list[FakeEventStream] = []
        self._waiting: dict[str, _Waiting] = {}  # permission requests not answered yet
        self._working: dict[str, tuple[Turn, str]] = {}  # agent session -> unfinished turn
        self.worktree_gate: asyncio.Event | None = None  # set: a slow server's worktree waits
        self.create_gate: asyncio.Event | None = None  # set: its session creates wait for it
        self.stream_gate: asyncio.Event | None = None  # set: its event streams connect only then
        self.refused_creates = 0  # this many next session creates answer 503
        # Set: the agent answers no prompt until it is (a first turn's instance still set up).
        self.answer_gate: asyncio.Event | None = None

    # -- what the test does ---------------------------------------------------------------------

    def queue(self, *turns: Turn) -> None:
        self.turns.extend(turns)

    def kill(self) -> None:
        self.up = False
        for stream in self.streams:
            stream.went_down()

    def revive(self) -> None:
        """Up again: its event streams reconnect (the real stream keeps trying)."""
        self.up = True
        for stream in self.streams:
            stream.came_back()

    def restart_mid_turn(self, agent_session_id: str) -> None:
        """Killed and started again while the session's turn was at work: the restarted server
        still lists the session (kept on disk), idle, its last answer never finished."""
        self._working.pop(agent_session_id, None)
        self._emit(self.sessions[agent_session_id], "session.idle", {})

    def prompted(self) -> list[AgentSessionState]:
        return [session for session in self.sessions.values() if session.prompts]

    def asking(self) -> list[str]:
        """The permission requests waiting for a reply."""
        return list(self._waiting)

    def working(self, agent_session_id: str) -> bool:
        """Whether the session's turn is at work (answered, not finished): `finish` may end it."""
        return agent_session_id in self._working

    def at_work(self) -> set[str]:
        """The sessions whose turn is in progress (working, or waiting for a permission)."""
        return set(self._working) | {waiting.session.id for waiting in self._waiting.values()}

    def finish(self, agent_session_id: str) -> None:
        """The turn that kept working ends now, answered."""
        turn, message_id = self._working.pop(agent_session_id)
        finished = Turn(turn.answer, (), turn.tokens_in, turn.tokens_out, turn.cost_usd)
        self._work(self.sessions[agent_session_id], finished, message_id)

    # -- what the agent does --------------------------------------------------------------------

    async def answer(self, session: AgentSessionState, turn: Turn) -> None:
        """The agent takes the prompt up (once `answer_gate` opens, if one is set)."""
        if self.answer_gate is not None:
            await self.answer_gate.wait()
        self.play(session, turn)

    def play(self, session: AgentSessionState, turn: Turn) -> None:
        self._emit(session, "session.status", {"status": {"type": "busy"}})
        message_id = _new_id("msg")
        self._put_assistant(session, self._info(session, message_id, turn, completed=False), [])
        if turn.asks:
            request_id = _new_id("per")
            self._waiting[request_id] = _Waiting(session, turn, message_id)
            self._emit(session, "permission.asked", {"id": request_id, "permission": turn.asks})
            return
        self._work(session, turn, message_id)

    def answer_permission(self, request_id: str, reply: str) -> None:
        self.permission_replies[request_id] = reply
        waiting = self._waiting.pop(request_id, None)
        if waiting is None:
            return
        turn = waiting.turn
        if reply == "reject":
            turn = Turn(answer="not allowed", tokens_in=turn.tokens_in, cost_usd=turn.cost_usd)
        self._work(waiting.session, turn, waiting.message_id)

    def abort(self, session: AgentSessionState) -> None:
        """The turn in progress ends with `MessageAbortedError`, as OpenCode's does."""
        session.aborted = True
        self._working.pop(session.id, None)
        last = session.messages[-1] if session.messages else None
        if last is None or last.info.role != "assistant" or last.info.completed:
            return
        error = {"name": "MessageAbortedError", "data": {"message": "The operation was aborted."}}
        info = last.info.model_dump(by_alias=True)
        info["error"] = error
        info["time"]["completed"] = info["time"]["created"]
        self._put_assistant(session, info, last.parts)
        self._emit(session, "session.error", {"error": error})
        self._emit(session, "session.idle", {})

    def _work(self, session: AgentSessionState, turn: Turn, message_id: str) -> None:
        so_far = next((m.parts for m in session.messages if m.info.id == message_id), [])
        parts = [part for part in so_far if part.get("type") == "tool"]
        for path in turn.writes:
            part = {
                "type": "tool",
                "tool": "write",
                "sessionID": session.id,
                "state": {"status": "completed", "input": {"filePath": path, "content": "x\n"}},
            }
            parts.append(part)
            session.diff.append(FileDiff(file=path, additions=1, status="added"))
            self._emit(session, "message.part.updated", {"part": part})
        text = {"type": "text", "text": turn.answer, "messageID": message_id}
        parts.append(text)
        self._emit(session, "message.part.updated", {"part": text})
        info = self._info(session, message_id, turn, completed=turn.finishes)
        if turn.error is not None:  # as OpenCode ends a step the model refused (401)
            info["error"] = {"name": "APIError", "data": {"message": turn.error, "statusCode": 401}}
        self._put_assistant(session, info, parts)
        if turn.error is not None:
            self._emit(session, "session.error", {"error": info["error"]})
        if not turn.finishes:
            self._working[session.id] = (turn, message_id)
            return
        self._emit(session, "session.status", {"status": {"type": "idle"}})
        self._emit(session, "session.idle", {})

    def _info(
        self, session: AgentSessionState, message_id: str, turn: Turn, *, completed: bool
    ) -> dict[str, Any]:
        created = int(self.clock().timestamp() * 1000)
        return {
            "id": message_id,
            "role": "assistant",
            "sessionID": session.id,
            "cost": turn.cost_usd,
            "tokens": {"input": turn.tokens_in, "output": turn.tokens_out},
            "time": {"created": created, "completed": created if completed else None},
            "path": {"cwd": session.directory, "root": session.directory},
        }

    def _put_assistant(
        self, session: AgentSessionState, info: dict[str, Any], parts: list[dict[str, Any]]
    ) -> None:
        """Add or replace the assistant message, and announce it."""
        message = Message(info=MessageInfo.model_validate(info), parts=parts)
        session.messages = [m for m in session.messages if m.info.id != info["id"]] + [message]
        self._emit(session, "message.updated", {"info": info})

    def _emit(self, session: AgentSessionState, event_type: str, properties: dict) -> None:
        event = ServerEvent(type=event_type, properties={"sessionID": session.id, **properties})
        for stream in self.streams:
            if stream.directory in (session.directory, EVERY_DIRECTORY):
                stream.route(event)


EVERY_DIRECTORY = "*"  # a stream of every directory's events (`/global/event`)


class FakeEventStream:
    """`AgentEventStream`: the server's events of one directory (or of every one), per
    subscribed session."""

    def __init__(self, server: FakeServer, directory: str | None) -> None:
        self.server = server
        self.directory = directory or server.url
        self.connected = asyncio.Event()
        self._down_since: datetime | None = None
        self._queues: dict[str, asyncio.Queue[ServerEvent]] = {}

    async def start(self, wait_seconds: float = 10.0) -> None:
        if self.server.stream_gate is not None:
            await self.server.stream_gate.wait()
        self.server.streams.append(self)
        if self.server.up:
            self.connected.set()
        else:
            self._down_since = self.server.clock()

    async def close(self) -> None:
        if self in self.server.streams:
            self.server.streams.remove(self)

    def subscribe(
        self, session_id: str, directory: str | None = None
    ) -> asyncio.Queue[ServerEvent]:
        return self._queues.setdefault(session_id, asyncio.Queue())

    def unsubscribe(self, session_id: str) -> None:
        self._queues.pop(session_id, None)

    def seconds_down(self) -> float:
        if self._down_since is None:
            return 0.0
        return (self.server.clock() - self._down_since).total_seconds()

    def went_down(self) -> None:
        self.connected.clear()
        self._down_since = self.server.clock()

    def came_back(self) -> None:
        self.connected.set()
        self._down_since = None

    def route(self, event: ServerEvent) -> None:
        queue = self._queues.get(event.session_id or "")
        if queue is not None:
            queue.put_nowait(event)


class FakeAgentClient:
    """`AgentServer` on a `FakeServer`."""

    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.base_url = server.url
        self.closed = False

    async def health(self) -> Health:
        self._reachable("GET /global/health")
        return Health(healthy=True, version="fake")

    async def create_session(
        self,
        title: str,
        *,
        directory: str | None = None,
        permission: list[dict[str, str]] | None = None,
    ) -> AgentSession:
        self._reachable("POST /session")
        if self.server.create_gate is not None:
            await self.server.create_gate.wait()
        if self.server.refused_creates > 0:
            self.server.refused_creates -= 1
            raise AgentServerError(self.server.url, "POST /session: 503 Service Unavailable")
        session = AgentSessionState(id=_new_id("ses"), directory=directory or self.server.url)
        self.server.session_permissions[session.id] = list(permission or [])
        self.server.sessions[session.id] = session
        return AgentSession(id=session.id, title=title, directory=session.directory)

    async def prompt_async(
        self,
        session_id: str,
        text: str,
        agent: str | None = None,
        model: str | None = None,
        *,
        directory: str | None = None,
    ) -> None:
        session = self._session(session_id)
        session.prompts.append(text)
        info = {"id": _new_id("msg"), "role": "user", "sessionID": session_id}
        session.messages.append(Message(info=MessageInfo.model_validate(info)))
        turn = self.server.turns.popleft() if self.server.turns else Turn()
        asyncio.get_running_loop().create_task(self.server.answer(session, turn))

    async def messages(self, session_id: str, *, directory: str | None = None) -> list[Message]:
        return list(self._session(session_id).messages)

    async def statuses(self, *, directory: str | None = None) -> dict[str, SessionStatus]:
        self._reachable("GET /session/status")
        where = directory or self.server.url
        return {
            session_id: SessionStatus(type="busy")
            for session_id in self.server.at_work()
            if self.server.sessions[session_id].directory == where
        }

    async def diff(
        self, session_id: str, message_id: str | None = None, *, directory: str | None = None
    ) -> list[FileDiff]:
        return list(self._session(session_id).diff)

    async def abort(self, session_id: str, *, directory: str | None = None) -> bool:
        self.server.abort(self._session(session_id))
        return True

    async def reply_permission(
        self, request_id: str, reply: str, message: str = "", *, directory: str | None = None
    ) -> bool:
        self._reachable(f"POST /permission/{request_id}/reply")
        self.server.answer_permission(request_id, reply)
        return True

    async def worktrees(self) -> list[str]:
        self._reachable("GET /experimental/worktree")
        return list(self.server.worktree_dirs)

    async def create_worktree(self, name: str | None = None) -> Worktree:
        self._reachable("POST /experimental/worktree")
        if self.server.worktree_gate is not None:
            await self.server.worktree_gate.wait()
        name = name or _new_id("worktree")
        directory = f"{self.server.url}/worktree/{name}"
        self.server.worktree_dirs.append(directory)
        return Worktree(name=name, directory=directory)

    async def remove_worktree(self, directory: str) -> bool:
        self._reachable("DELETE /experimental/worktree")
        if directory in self.server.worktree_dirs:
            self.server.worktree_dirs.remove(directory)
        return True

    async def dispose_instance(self, directory: str) -> bool:
        self._reachable("POST /instance/dispose")
        self.server.disposed.append(directory)
        return True

    def event_stream(self, directory: str | None = None) -> FakeEventStream:
        return FakeEventStream(self.server, directory)

    def shared_event_stream(self) -> FakeEventStream:
        return FakeEventStream(self.server, EVERY_DIRECTORY)

    async def aclose(self) -> None:
        self.closed = True

    def _reachable(self, call: str) -> None:
        if not self.server.up:
            raise AgentServerError(self.server.url, f"{call}: connection refused")

    def _session(self, session_id: str) -> AgentSessionState:
        self._reachable(f"session {session_id}")
        session = self.server.sessions.get(session_id)
        if session is None:
            raise AgentSessionGone(self.server.url, f"session {session_id} not found", 404)
        return session


class FakeAgentServers:
    """`AgentServers`: one `FakeServer` per URL, made on first use."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.servers: dict[str, FakeServer] = {}
        self.clients: list[FakeAgentClient] = []

    def server(self, url: str) -> FakeServer:
        return self.servers.setdefault(url, FakeServer(url, self.clock))

    def client_for(self, agent: Agent) -> FakeAgentClient:
        client = FakeAgentClient(self.server(agent.server_url))
        self.clients.append(client)
        return client

    def control(self) -> FakeAgentControl:
        return FakeAgentControl(self)


class FakeAgentControl:
    """`services.agent_control.AgentControl` for the session service, on the same servers."""

    def __init__(self, servers: FakeAgentServers) -> None:
        self._servers = servers

    def abort(self, agent: Agent, agent_session_id: str) -> None:
        server = self._servers.server(agent.server_url)
        server.abort(server.sessions[agent_session_id])

    def send_prompt(self, agent: Agent, agent_session_id: str, text: str) -> None:
        raise NotImplementedError("not needed by the supervisor's tests")
