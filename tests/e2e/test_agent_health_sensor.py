"""The agent-health sensor probes real OpenCode servers: a live one gets a heartbeat in the
database and in Redis; a dead one keeps its old heartbeat and is reported down."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from domain.agent import Agent
from domain.tenant import Tenant
from resources.database import Database, tenant_scope, unit_of_work
from resources.database.migrate import upgrade
from resources.database_resource import DatabaseResource
from resources.opencode.resource import OpenCodeResource
from resources.redis.resource import RedisResource
from sensors.agent_health import agent_health_sensor
from standins.opencode_server import OpenCodeServer, free_port


def test_live_agents_beat_and_dead_ones_are_reported(
    tmp_path: Path,
    opencode_binary: Path,
    opencode_home: Path,
    scripted_model_url: str,
    redis_url: str,
) -> None:
    url = f"sqlite:///{tmp_path / 'indorch.db'}"
    upgrade(url)
    database = Database(url)
    with unit_of_work(database) as uow:
        uow.tenants.add(Tenant(slug="acme", name="Acme"))
    with OpenCodeServer(scripted_model_url, home=opencode_home, binary=opencode_binary) as live:
        with tenant_scope("acme"), unit_of_work(database) as uow:
            up = uow.agents.add(Agent(tenant_id="acme", name="up", server_url=live.url))
            dead_url = f"http://127.0.0.1:{free_port()}"
            down = uow.agents.add(Agent(tenant_id="acme", name="down", server_url=dead_url))
        redis = RedisResource(url=redis_url, heartbeat_ttl_seconds=30)
        resources = {
            "database": DatabaseResource(url=url),
            "opencode": OpenCodeResource(connect_timeout_seconds=1),
            "redis": redis,
        }
        with dg.build_sensor_context(resources=resources) as context:
            result = agent_health_sensor.evaluate_tick(context)

    assert result.skip_message == "acme: 1/2 up"
    with tenant_scope("acme"), unit_of_work(database) as uow:
        assert uow.agents.get(up.id).last_heartbeat_at is not None
        assert uow.agents.get(down.id).last_heartbeat_at is None
    store = RedisResource(url=redis_url).heartbeat_store()
    assert store is not None
    alive = store.alive("acme")
    assert alive[up.id].healthy and not alive[down.id].healthy
    database.dispose()
