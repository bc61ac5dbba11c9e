"""An agent link's stream of every directory: one per server, shared by the sessions in
workspaces of their own, and closed with the link.

Sessions starting at once all wait for the one stream being opened (no second connection), and
it carries the events of a session in any directory while the link's own stream (the tenant's
workspace) carries only that directory's.
"""

from __future__ import annotations

import asyncio

from domain.agent import Agent
from resources.opencode.models import ServerEvent
from services.supervision.agent_pool import AgentLink, StartPacer
from tests.unit.supervision.fake_agent_server import FakeAgentServers, FakeClock

AGENT = Agent(tenant_id="acme", name="agent-1", server_url="http://agent-1.test")


def test_sessions_starting_at_once_share_one_stream_of_every_directory() -> None:
    servers = FakeAgentServers(FakeClock())

    async def run() -> None:
        client = servers.client_for(AGENT)
        own = client.event_stream("/w/tenant-acme")
        await own.start()
        link = AgentLink(
            agent=AGENT, client=client, stream=own, starting=StartPacer(2, lambda: None)
        )
        streams = await asyncio.gather(*(link.workspaces_stream() for _ in range(5)))
        assert all(stream is streams[0] for stream in streams)
        assert streams[0] is not own
        server = servers.server(AGENT.server_url)
        assert len(server.streams) == 2  # the link's own and the one of every directory

        made = await client.create_session("in a slot", directory="/w/slots/slot-a-0")
        queue = streams[0].subscribe(made.id, "/w/slots/slot-a-0")
        own_queue = own.subscribe(made.id)
        await client.prompt_async(made.id, "Do it.", directory="/w/slots/slot-a-0")
        event: ServerEvent = await asyncio.wait_for(queue.get(), 1.0)
        assert event.session_id == made.id
        assert own_queue.empty()  # another directory's session: not on the tenant's stream

        await link.close_streams()
        assert server.streams == []

    asyncio.run(run())
