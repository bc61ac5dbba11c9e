"""The agent-health sensor probes real OpenCode servers: a live one gets a heartbeat in the
database and in Redis; a dead one keeps its old heartbeat and is reported down. A live server
gets its tenant's workspace before any wave needs it (once), unless sessions have their own."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import dagster as dg
import httpx

from domain.agent import Agent
from domain.tenant import Tenant
from resources.database import Database, tenant_scope, unit_of_work
from resources.database.migrate import upgrade
from resources.database_resource import DatabaseResource
from resources.opencode.resource import OpenCodeResource
from resources.redis.resource import RedisResource
from resources.supervision_config import SupervisionConfig
from sensors.agent_health import agent_health_sensor
from services.tenant_workspaces import workspace_name
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
            "supervision": SupervisionConfig(),
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


def test_a_live_server_gets_its_tenants_workspace_before_any_wave(
    tmp_path: Path, opencode_binary: Path, opencode_home: Path, scripted_model_url: str
) -> None:
    url = f"sqlite:///{tmp_path / 'indorch.db'}"
    upgrade(url)
    database = Database(url)
    with unit_of_work(database) as uow:
        uow.tenants.add(Tenant(slug="acme", name="Acme"))

    def tick(supervision: SupervisionConfig) -> None:
        resources = {
            "database": DatabaseResource(url=url),
            "opencode": OpenCodeResource(connect_timeout_seconds=1),
            "redis": RedisResource(url=None),
            "supervision": supervision,
        }
        with dg.build_sensor_context(resources=resources) as context:
            assert agent_health_sensor.evaluate_tick(context).skip_message == "acme: 2/2 up"

    def recorded() -> list[str]:
        with tenant_scope("acme"), unit_of_work(database) as uow:
            return [workspace.directory for workspace in uow.workspaces.list()]

    with OpenCodeServer(scripted_model_url, home=opencode_home, binary=opencode_binary) as live:
        with tenant_scope("acme"), unit_of_work(database) as uow:
            for name in ("one", "two"):  # two agents on one server: one workspace
                uow.agents.add(Agent(tenant_id="acme", name=name, server_url=live.url))
        with httpx.Client(base_url=live.url, timeout=30) as client:

            def tenant_worktrees() -> list[str]:
                listed = client.get("/experimental/worktree").json()
                return [
                    d for d in listed if PurePosixPath(d).name.startswith(workspace_name("acme"))
                ]

            tick(SupervisionConfig(session_workspaces=True))  # sessions have their own: none
            assert recorded() == [] and tenant_worktrees() == []

            tick(SupervisionConfig())
            made = recorded()
            assert len(made) == 1 and tenant_worktrees() == made

            tick(SupervisionConfig())  # recorded already: not made again
            assert recorded() == made and tenant_worktrees() == made
    database.dispose()
