"""The port through which services act on a session's real agent (an OpenCode server)."""

from __future__ import annotations

from typing import Protocol

from domain.agent import Agent


class AgentControl(Protocol):
    def abort(self, agent: Agent, agent_session_id: str) -> None:
        """Stop whatever the agent session is doing now (idempotent)."""

    def send_prompt(self, agent: Agent, agent_session_id: str, text: str) -> None:
        """Give the agent session a new instruction, without waiting for the answer."""
