"""Making a promoted model usable on a tenant's agent servers: each server's OpenCode gets the
provider `indorch-tuned` (the fine-tuning provider's inference endpoint) with the model, so the
tenant's sessions can be prompted with it.

One server serves one tenant (issue 10), so a server's global configuration is its tenant's.
The key written there is the inference key given for the tenant: the server's agent can read
its own configuration, so it must be a key the tenant may hold, never the platform's.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from domain.promotion import TUNED_PROVIDER_ID, ModelPromotion
from resources.database import Database, tenant_scope, unit_of_work
from resources.opencode.control import client_for
from resources.opencode.errors import AgentServerError

PROVIDER_PACKAGE = "@ai-sdk/openai-compatible"
INFERENCE_KEY_SECRET = "provider-inference-key"  # the tenant secret holding its restricted key


@dataclass(frozen=True)
class ConfigPush:
    agent_id: str
    server_url: str
    error: str | None = None  # None: the server has the model now


def tuned_provider_config(
    promotion: ModelPromotion, inference_url: str, inference_key: str
) -> dict[str, Any]:
    return {
        "provider": {
            TUNED_PROVIDER_ID: {
                "npm": PROVIDER_PACKAGE,
                "name": "Tenant models (fine-tuned)",
                "options": {"baseURL": inference_url, "apiKey": inference_key},
                "models": {
                    promotion.model: {
                        "name": f"{promotion.tenant_id} tuned ({promotion.id})",
                        "tool_call": True,
                        "limit": {"context": 128_000, "output": 8_000},
                    }
                },
            }
        }
    }


async def publish_to_agents(
    database: Database,
    promotion: ModelPromotion,
    inference_url: str,
    inference_key: str,
) -> list[ConfigPush]:
    """Every active agent of the tenant, each server on its own (an unreachable one is
    reported, the others still done)."""
    with tenant_scope(promotion.tenant_id), unit_of_work(database) as uow:
        agents = uow.agents.list(active_only=True)
    patch = tuned_provider_config(promotion, inference_url, inference_key)

    async def push(agent) -> ConfigPush:
        try:
            async with client_for(agent) as client:
                await client.update_global_config(patch)
        except AgentServerError as error:
            return ConfigPush(agent.id, agent.server_url, error.detail)
        return ConfigPush(agent.id, agent.server_url)

    return list(await asyncio.gather(*(push(agent) for agent in agents)))
