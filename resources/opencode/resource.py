"""OpenCode servers as a Dagster resource."""

from __future__ import annotations

import dagster as dg
import httpx
from pydantic import Field

from domain.agent import Agent
from resources.opencode.client import OpenCodeClient
from resources.opencode.control import client_for


class OpenCodeResource(dg.ConfigurableResource):
    """Builds clients for the registered agents' OpenCode servers."""

    request_timeout_seconds: float = Field(default=10.0, gt=0)
    connect_timeout_seconds: float = Field(default=3.0, gt=0)

    def client_for(self, agent: Agent) -> OpenCodeClient:
        timeout = httpx.Timeout(self.request_timeout_seconds, connect=self.connect_timeout_seconds)
        return client_for(agent, timeout)
