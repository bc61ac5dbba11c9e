"""The OpenCode configuration that points a real OpenCode server at the scripted model.

Passed to the server as ``OPENCODE_CONFIG_CONTENT``. One provider (``scripted`` by default) using
the ``@ai-sdk/openai-compatible`` package (OpenCode installs it from npm into ``HOME`` on the first
prompt), one model (``scripted/coder``) with a price per million tokens, so OpenCode computes the
cost of each assistant message from the usage the model reports.
"""

from __future__ import annotations

import json
from typing import Any

PROVIDER_ID = "scripted"
MODEL_ID = "coder"
PROVIDER_PACKAGE = "@ai-sdk/openai-compatible"
# USD per million tokens, as OpenCode's config expects (input 3, output 15: a mid-size model).
COST_INPUT_PER_MILLION = 3.0
COST_OUTPUT_PER_MILLION = 15.0


def provider_config(
    model_base_url: str,
    *,
    provider_id: str = PROVIDER_ID,
    model_id: str = MODEL_ID,
    api_key: str = "sk-scripted",
    cost_input: float = COST_INPUT_PER_MILLION,
    cost_output: float = COST_OUTPUT_PER_MILLION,
) -> dict[str, Any]:
    """The config dict; ``model_base_url`` is the model server's root (``/v1`` is appended)."""
    base_url = model_base_url.rstrip("/")
    if not base_url.endswith("/v1"):
        base_url += "/v1"
    qualified = f"{provider_id}/{model_id}"
    return {
        "$schema": "https://opencode.ai/config.json",
        "model": qualified,
        "small_model": qualified,
        "share": "disabled",
        "autoupdate": False,
        "provider": {
            provider_id: {
                "npm": PROVIDER_PACKAGE,
                "name": "Scripted model",
                "options": {"baseURL": base_url, "apiKey": api_key},
                "models": {
                    model_id: {
                        "name": "Scripted coder",
                        "cost": {"input": cost_input, "output": cost_output},
                        "limit": {"context": 200_000, "output": 8_000},
                        "tool_call": True,
                    }
                },
            }
        },
    }


def provider_config_json(model_base_url: str, **options: Any) -> str:
    return json.dumps(provider_config(model_base_url, **options))
