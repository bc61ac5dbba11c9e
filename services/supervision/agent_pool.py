"""The wave's agents: which one takes a session, and one link to each agent's server.

A link holds the server's client, its one shared event stream (scoped to the tenant's workspace
there) and a bound on the starts in flight on it of sessions in workspaces of their own. Routing
reads the agents and their load through `AgentLoadView`, not with a query per session; while every
agent is full, a session waits.
The wave's agents are linked all at once and routed to as they come up: while some are still
being linked, a linked agent takes only the sessions it can start at once, so the wave starts
work at the first link without piling its sessions onto that one agent.

External agents (EAP) are routed to by the same rules (plus a fresh heartbeat, in
`domain.routing`) but never linked: there is no server to drive, so `route` answers an
`ExternalRoute` and the wave hands the session to `ExternalDispatch`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from domain.agent import Agent
from domain.errors import NoAgentAvailable
from domain.routing import AgentState, choose_agent, unserved_reason
from domain.session import Session
from domain.supervision_policy import SupervisionSettings
from resources.database import Database, unit_of_work
from resources.opencode.errors import AgentServerError
from services.agent_load import AgentLoadView
from services.supervision.agent_server import AgentEventStream, AgentServer, AgentServers
from services.supervision.session_recorder import SessionRecorder
from services.tenant_workspaces import tenant_workspace

logger = logging.getLogger(__name__)
STREAM_START_WAIT_SECONDS = 5.0


class StartPacer:
    """At most `limit` starts of sessions in workspaces of their own in flight on one agent;
    the rest queue here rather than all asking the server to set up an instance at once (it
    answers slowly, then not). A start is held from the agent session's creation until its
    agent is seen answering (`SessionStart`): the first prompt in a directory new to the server
    is where it sets up its instance for it.
    `on_release` is told whenever a start ends."""

    def __init__(self, limit: int, on_release: Callable[[], None]) -> None:
        self._slots = asyncio.Semaphore(limit)
        self._on_release = on_release

    async def hold(self) -> HeldSlot:
        await self._slots.acquire()
        return HeldSlot(self._release)

    def _release(self) -> None:
        self._slots.release()
        self._on_release()


class HeldSlot:
    """One slot of a bound (an agent's start, a workspace), released once (later calls do
    nothing)."""

    def __init__(self, release: Callable[[], None]) -> None:
        self._release: Callable[[], None] | None = release

    def release(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()


@dataclass(frozen=True)
class ExternalRoute:
    """The session goes to this external agent (EAP), not to a server the wave drives."""

    agent: Agent


@dataclass
class AgentLink:
    agent: Agent
    client: AgentServer
    stream: AgentEventStream
    starting: StartPacer
    directory: str | None = None  # the tenant's workspace on the server (None: its default)
    workspace_ready: bool = True  # False: the tenant's workspace could not be made there
    # Its sessions in workspaces of their own in flight at once, when bounded.
    workspaces: asyncio.Semaphore | None = None
    # For the sessions in workspaces of their own: a view of the process's one stream of every
    # directory on the server (shared by every wave), joined at the first such session (a stream
    # each would cost the server and each start a connection; one per wave, each event sent
    # once per tenant).
    _workspaces_stream: asyncio.Future[AgentEventStream] | None = field(
        default=None, init=False, repr=False
    )

    async def hold_workspace(self) -> HeldSlot | None:
        """One of the agent's workspaces in flight, once one is free (None: unbounded)."""
        if self.workspaces is None:
            return None
        await self.workspaces.acquire()
        return HeldSlot(self.workspaces.release)

    async def workspaces_stream(self) -> AgentEventStream:
        """The link's view of the server's stream of every directory, joined once (callers
        meanwhile wait)."""
        if self._workspaces_stream is None:
            self._workspaces_stream = asyncio.ensure_future(self._start_workspaces_stream())
        return await asyncio.shield(self._workspaces_stream)

    async def _start_workspaces_stream(self) -> AgentEventStream:
        stream = self.client.shared_event_stream()
        await stream.start(wait_seconds=STREAM_START_WAIT_SECONDS)
        return stream

    async def close_streams(self) -> None:
        await self.stream.close()
        if self._workspaces_stream is not None:
            making, self._workspaces_stream = self._workspaces_stream, None
            if making.done() and not making.cancelled() and making.exception() is None:
                await making.result().close()
            else:
                making.cancel()

    @property
    def healthy(self) -> bool:
        """Routable: its workspace made and its event stream connected now. A server lost for a
        while is routable again once its stream reconnects (the stream keeps trying), so a
        lingering wave does not keep its tenant's new sessions waiting on a stale verdict."""
        return self.workspace_ready and self.stream.connected.is_set()


class AgentPool:
    """The tenant's active agents as one wave sees them, linked on first use."""

    def __init__(
        self,
        database: Database,
        servers: AgentServers,
        tenant: str,
        recorder: SessionRecorder,
        settings: SupervisionSettings,
        clock: Callable[[], datetime],
    ) -> None:
        self._database = database
        self._servers = servers
        self._tenant = tenant
        self._recorder = recorder
        self._settings = settings
        self._clock = clock
        self._links: dict[str, AgentLink] = {}
        self._linking: dict[str, asyncio.Future[AgentLink]] = {}
        self._routing_lock = asyncio.Lock()
        self._changed = asyncio.Event()  # set (and replaced) when a start ends
        self.load = AgentLoadView(
            self._read_registry,
            timedelta(seconds=settings.routing_refresh_seconds),
            clock,
        )

    async def route(self, session: Session) -> AgentLink | ExternalRoute | None:
        """Choose an agent; while all are full, wait (the wave renews the lease meanwhile).

        None when no agent of the tenant offers what the session needs any more (removed,
        drained or deactivated since its claim): the session is handed back to PENDING, its slot
        freed, rather than waiting in the wave for an agent that will not come.
        """
        waiting_for = ""
        while True:
            # Agents are linked all at once, outside the lock, and routed to once linked. While
            # some are still being linked, only a linked agent that would start the session now
            # takes it (its starts not all taken): a slow server (its worktree, its event
            # stream) neither holds up the others' sessions nor gets them all queued on the
            # first agent linked.
            agents = self.load.agents()
            linking = [
                self._start_link(a) for a in agents if not (a.external or self._linked(a.id))
            ]
            changed = self._changed
            async with self._routing_lock:
                busy = self.load.busy()
                states = []
                ttl = timedelta(seconds=self._settings.external_heartbeat_ttl_seconds)
                for agent in agents:
                    if agent.external:
                        states.append(
                            AgentState(agent, busy[agent.id], now=self._clock(), heartbeat_ttl=ttl)
                        )
                        continue
                    link = self._linked(agent.id)
                    if link is None or (linking and not self._can_start_now(agent.id)):
                        continue  # still being linked, or (meanwhile) no start free
                    states.append(
                        AgentState(agent, busy[agent.id], healthy=link.healthy, now=self._clock())
                    )
                try:
                    decision = choose_agent(states, session.required_capabilities)
                except NoAgentAvailable as refused:
                    reason = str(refused)
                else:
                    self.load.routed(decision.agent_id)
                    self._recorder.append(
                        session.id,
                        "session.routed",
                        {"agent_id": decision.agent_id, "reason": decision.reason},
                    )
                    chosen = next(a for a in agents if a.id == decision.agent_id)
                    if chosen.external:
                        return ExternalRoute(chosen)
                    return self._links[decision.agent_id]
            offered = [agent.capabilities for agent in self.load.agents()]
            unserved = unserved_reason(session.required_capabilities, offered) is not None
            if unserved and self._recorder.release_unroutable(session):
                return None
            if linking:  # a link made or a start ended may let it start: route again then
                await self._first_of(linking, changed)
                continue
            if reason != waiting_for:  # recorded once per reason, not every round
                self._recorder.append(session.id, "session.waiting", {"reason": reason})
                waiting_for = reason
            await asyncio.sleep(self._settings.routing_wait_seconds)

    async def _first_of(
        self, linking: list[asyncio.Future[AgentLink]], changed: asyncio.Event
    ) -> None:
        """Until one of the links is made (or failed), a start ends, or `routing_wait_seconds`."""
        start_ended = asyncio.ensure_future(changed.wait())
        try:
            await asyncio.wait(
                [start_ended, *linking],
                timeout=self._settings.routing_wait_seconds,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            start_ended.cancel()

    def _linked(self, agent_id: str) -> AgentLink | None:
        """The agent's link once made: its worktree there and its event stream started (or
        given up waiting for). A link whose stream still connects is not routed to yet: as
        unhealthy it would leave the first agent connected all the tenant's sessions."""
        making = self._linking.get(agent_id)
        if making is None or not making.done():
            return None
        return self._links.get(agent_id)

    def _can_start_now(self, agent_id: str) -> bool:
        """Whether the agent's starts are not all taken by the sessions routed to it and not
        started yet (those still preparing their workspace included)."""
        return self.load.in_transit(agent_id) < self._settings.starts_per_agent

    def _start_ended(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def agent(self, agent_id: str) -> Agent:
        with unit_of_work(self._database) as uow:
            return uow.agents.get(agent_id)

    async def link(self, agent: Agent) -> AgentLink:
        """The agent's link, made once: callers arriving while it is made wait for that one."""
        link = self._links.get(agent.id)
        if link is not None:
            return link
        return await asyncio.shield(self._start_link(agent))

    def _start_link(self, agent: Agent) -> asyncio.Future[AgentLink]:
        """The making of the agent's link, started now unless under way (a failed one again)."""
        making = self._linking.get(agent.id)
        if making is None or (making.done() and agent.id not in self._links):
            making = self._linking[agent.id] = asyncio.ensure_future(self._make_link(agent))
        return making

    async def _make_link(self, agent: Agent) -> AgentLink:
        link = self._links.get(agent.id)
        if link is None:
            client = self._servers.client_for(agent)
            directory, workspace_ready = None, True
            if self._settings.in_tenant_workspaces:
                try:
                    directory = await tenant_workspace(client, self._tenant, self._database)
                except AgentServerError as error:  # never fall back to a shared workspace
                    logger.warning(
                        "tenant %s: no workspace on agent %s: %s", self._tenant, agent.id, error
                    )
                    workspace_ready = False
            stream = client.event_stream(directory)
            link = AgentLink(
                agent=agent,
                client=client,
                stream=stream,
                directory=directory,
                starting=StartPacer(self._settings.starts_per_agent, self._start_ended),
                workspace_ready=workspace_ready,
                workspaces=(
                    asyncio.Semaphore(self._settings.workspaces_per_agent)
                    if self._settings.workspaces_per_agent
                    else None
                ),
            )
            self._links[agent.id] = link
            await stream.start(wait_seconds=STREAM_START_WAIT_SECONDS)
        return link

    async def close(self) -> None:
        for making in self._linking.values():
            making.cancel()
        for link in self._links.values():
            await link.close_streams()
            await link.client.aclose()

    def _read_registry(self) -> tuple[list[Agent], dict[str, int]]:
        with unit_of_work(self._database) as uow:
            return uow.agents.list(active_only=True), uow.sessions.active_by_agent()
