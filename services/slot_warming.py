"""Scratch slots made and warmed on their agent's server before a burst needs them.

A directory's first prompt costs its OpenCode server the set-up of its instance (~4 CPU-s on the
scripted model, on the server's one event loop, where a prompt in a directory it already serves
costs ~1): a burst of sessions each in a new slot made their servers pay it on their start path,
one after another. Asking the new directory for its config, agents, tools, files, VCS or v2
location boots part of it and saves nothing measurable (`bench.instance_warm_up`); only a prompt
does. So the warm-up is one: a session in the slot, one prompt with every tool denied (by the
prompt's tools and by the session's permission rules: the model can only answer, nothing in the
slot changes), then the session deleted. It costs the tenant's model one short answer (about
2,400 input tokens on OpenCode's system prompt), logged with the tenant, once per slot and
server: the slot stays warm while the server runs (`workspace_slots`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from domain.agent import Agent
from resources.opencode.client import OpenCodeClient
from resources.opencode.errors import AgentServerError
from resources.opencode.models import Message
from services.session_workspaces import SessionWorkspaces

logger = logging.getLogger(__name__)

WARM_UP_TITLE = "indorch warm-up"
WARM_UP_PROMPT = "This is a warm-up of a new workspace: answer with the single word OK."
DENY_EVERY_TOOL = [{"permission": "*", "pattern": "*", "action": "deny"}]
WARM_UP_READ_TIMEOUT_SECONDS = 120.0


async def warm_instance(
    client: OpenCodeClient, directory: Path, prompt: str = WARM_UP_PROMPT
) -> Message:
    """The server's instance for `directory` set up by one prompt that may use no tool; its
    answer. The warm-up's session is deleted afterwards."""
    where = str(directory)
    session = await client.create_session(
        WARM_UP_TITLE, directory=where, permission=DENY_EVERY_TOOL
    )
    try:
        return await client.prompt(
            session.id,
            prompt,
            directory=where,
            tools={"*": False},
            read_timeout=WARM_UP_READ_TIMEOUT_SECONDS,
        )
    finally:
        try:
            await client.delete_session(session.id, directory=where)
        except AgentServerError as error:
            logger.warning(f"warm-up session {session.id} in {where} not deleted: {error}")


@dataclass
class WarmUpBudget:
    """How many warm-ups one sensor tick may still start (its evaluation time is bounded)."""

    left: int

    def take(self) -> bool:
        if self.left <= 0:
            return False
        self.left -= 1
        return True

    def give_back(self) -> None:
        self.left += 1


@dataclass(frozen=True)
class AgentWarmUp:
    slots: int
    tokens: int


class SlotWarming:
    def __init__(self, workspaces: SessionWorkspaces) -> None:
        self._workspaces = workspaces

    async def warm_agent(
        self, client: OpenCodeClient, agent: Agent, budget: WarmUpBudget
    ) -> AgentWarmUp:
        """The agent's slots made and warmed one after another, while the budget lasts and it
        has fewer than are kept free. A failure ends this agent's warm-up (the next tick tries
        again) and is raised."""
        tokens = 0
        slots = 0

        async def warm(directory: Path) -> None:
            nonlocal tokens
            answer = await warm_instance(client, directory)
            used = answer.info.tokens
            tokens += int(used.input + used.output + used.reasoning)

        while budget.take():
            made = await self._workspaces.warm_slots_ahead(agent.tenant_id, agent.id, warm, 1)
            if not made:
                budget.give_back()
                break
            slots += made
        if slots:
            logger.info(
                f"tenant {agent.tenant_id}: {slots} slot(s) warmed on agent {agent.id} "
                f"({tokens} tokens)"
            )
        return AgentWarmUp(slots, tokens)
