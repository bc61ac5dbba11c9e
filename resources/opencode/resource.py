"""OpenCode servers as a Dagster resource, and the sync `AgentControl` the services use."""

from __future__ import annotations

import asyncio
import os

import dagster as dg
import httpx
from pydantic import Field

from domain.agent import Agent
from resources.opencode.client import OpenCodeClient


def agent_password(agent: Agent) -> str | None:
    """The agent's Basic-auth password, read from the environment variable it names.

    The registry stores only the variable's name, so no secret ever reaches the database or logs.
    """
    return os.environ.get(agent.password_env) if agent.password_env else None


class OpenCodeResource(dg.ConfigurableResource):
    """Builds clients for the registered agents' OpenCode servers."""

    request_timeout_seconds: float = Field(default=10.0, gt=0)
    connect_timeout_seconds: float = Field(default=3.0, gt=0)

    def client_for(self, agent: Agent) -> OpenCodeClient:
        timeout = httpx.Timeout(self.request_timeout_seconds, connect=self.connect_timeout_seconds)
        return OpenCodeClient(agent.server_url, password=agent_password(agent), timeout=timeout)


class OpenCodeAgentControl:
    """`services.agent_control.AgentControl` on real OpenCode servers, for sync callers (CLI)."""

    def __init__(self, opencode: OpenCodeResource | None = None) -> None:
        self._opencode = opencode or OpenCodeResource()

    def abort(self, agent: Agent, agent_session_id: str) -> None:
        asyncio.run(self._abort(agent, agent_session_id))

    def send_prompt(self, agent: Agent, agent_session_id: str, text: str) -> None:
        asyncio.run(self._prompt(agent, agent_session_id, text))

    async def _abort(self, agent: Agent, agent_session_id: str) -> None:
        async with self._opencode.client_for(agent) as client:
            await client.abort(agent_session_id)

    async def _prompt(self, agent: Agent, agent_session_id: str, text: str) -> None:
        async with self._opencode.client_for(agent) as client:
            await client.prompt_async(agent_session_id, text, agent=agent.opencode_agent)
