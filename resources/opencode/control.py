"""Acting on agent sessions from synchronous callers (CLI, services), without Dagster loaded."""

from __future__ import annotations

import asyncio
import os

import httpx

from domain.agent import Agent
from domain.agent_server_address import password_env_problem
from resources.opencode.client import DEFAULT_TIMEOUT, OpenCodeClient
from resources.secret_box import secret_box_from_environment


def agent_password(agent: Agent) -> str | None:
    """The agent's Basic-auth password: a managed runtime's, opened from its sealed form (the
    platform's secret box); otherwise read from the environment variable it names (the registry
    stores only the variable's name, so no secret ever reaches the database or logs). Only a
    name with the agent password prefix is read (one stored before the rule might name
    `DATABASE_URL`, which must never be sent to an agent's URL). Never logged.
    """
    if agent.password_sealed:
        return secret_box_from_environment().open(agent.password_sealed, f"agent {agent.id}")
    if not agent.password_env or password_env_problem(agent.password_env):
        return None
    return os.environ.get(agent.password_env)


def client_for(agent: Agent, timeout: httpx.Timeout = DEFAULT_TIMEOUT) -> OpenCodeClient:
    return OpenCodeClient(agent.server_url, password=agent_password(agent), timeout=timeout)


class OpenCodeAgentControl:
    """`services.agent_control.AgentControl` on real OpenCode servers, for sync callers."""

    def __init__(self, timeout: httpx.Timeout = DEFAULT_TIMEOUT) -> None:
        self._timeout = timeout

    def abort(self, agent: Agent, agent_session_id: str) -> None:
        asyncio.run(self._abort(agent, agent_session_id))

    def send_prompt(self, agent: Agent, agent_session_id: str, text: str) -> None:
        asyncio.run(self._prompt(agent, agent_session_id, text))

    async def _abort(self, agent: Agent, agent_session_id: str) -> None:
        async with client_for(agent, self._timeout) as client:
            await client.abort(agent_session_id)

    async def _prompt(self, agent: Agent, agent_session_id: str, text: str) -> None:
        async with client_for(agent, self._timeout) as client:
            await client.prompt_async(agent_session_id, text, agent=agent.opencode_agent)
