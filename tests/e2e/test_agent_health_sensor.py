"""The agent-health sensor probes real OpenCode servers: a live one gets a heartbeat in the
database and in Redis; a dead one keeps its old heartbeat and is reported down. A live server
gets its tenant's workspace before any wave needs it (once), unless sessions have their own: then,
with `warm_slots_ahead`, each live agent gets its scratch slots made and warmed ahead, as many as
are kept free.

The tests share the module's server (`opencode_server`): each has tenants and agents of its own in
a database of its own, and none stops the server."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import dagster as dg
import httpx
import pytest

from domain.agent import Agent
from domain.tenant import Tenant
from resources.database import Database, tenant_scope, unit_of_work
from resources.database_resource import DatabaseResource
from resources.opencode.resource import OpenCodeResource
from resources.redis.resource import RedisResource
from resources.settings import WORKSPACES_DIR_VAR
from resources.supervision_config import SupervisionConfig
from sensors.agent_health import agent_health_sensor
from services.tenant_workspaces import workspace_name
from standins.opencode_server import OpenCodeServer, free_port

TENANTS = {"acme": ("one", "two"), "globex": ("three",)}


def health_tick(url: str, supervision: SupervisionConfig) -> str | None:
    """One evaluation of the sensor on the database at `url`, without Redis; its message."""
    resources = {
        "database": DatabaseResource(url=url),
        "opencode": OpenCodeResource(connect_timeout_seconds=1),
        "redis": RedisResource(url=None),
        "supervision": supervision,
    }
    with dg.build_sensor_context(resources=resources) as context:
        return agent_health_sensor.evaluate_tick(context).skip_message


def test_live_agents_beat_and_dead_ones_are_reported(
    tmp_path: Path,
    opencode_server: OpenCodeServer,
    redis_url: str,
    migrated_sqlite_url: str,
) -> None:
    url = migrated_sqlite_url
    database = Database(url)
    with unit_of_work(database) as uow:
        uow.tenants.add(Tenant(slug="acme", name="Acme"))
    with tenant_scope("acme"), unit_of_work(database) as uow:
        up = uow.agents.add(Agent(tenant_id="acme", name="up", server_url=opencode_server.url))
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
    tmp_path: Path,
    opencode_server: OpenCodeServer,
    migrated_sqlite_url: str,
) -> None:
    url = migrated_sqlite_url
    database = Database(url)
    with unit_of_work(database) as uow:
        for slug in TENANTS:
            uow.tenants.add(Tenant(slug=slug, name=slug.title()))

    def tick(supervision: SupervisionConfig) -> None:
        assert health_tick(url, supervision) == "acme: 2/2 up; globex: 1/1 up"

    def recorded() -> dict[str, list[str]]:
        made = {}
        for slug in TENANTS:
            with tenant_scope(slug), unit_of_work(database) as uow:
                made[slug] = [workspace.directory for workspace in uow.workspaces.list()]
        return made

    for slug, names in TENANTS.items():
        with tenant_scope(slug), unit_of_work(database) as uow:
            for name in names:  # acme: two agents on one server, one workspace
                uow.agents.add(Agent(tenant_id=slug, name=name, server_url=opencode_server.url))
    with httpx.Client(base_url=opencode_server.url, timeout=30) as client:

        def on_server() -> dict[str, list[str]]:
            listed = client.get("/experimental/worktree").json()
            return {
                slug: [d for d in listed if PurePosixPath(d).name.startswith(workspace_name(slug))]
                for slug in TENANTS
            }

        tick(SupervisionConfig(session_workspaces=True))  # sessions have their own: none
        # The tenant's shared worktree, one tenant's made per tick.
        shared = SupervisionConfig(session_workspaces=False, workspaces_per_health_tick=1)
        assert recorded() == on_server() == {"acme": [], "globex": []}

        tick(shared)  # one tenant's this tick (the limit), the other's next
        first = recorded()
        assert sorted(len(dirs) for dirs in first.values()) == [0, 1]
        assert on_server() == first

        tick(shared)
        made = recorded()
        assert all(len(dirs) == 1 for dirs in made.values()) and on_server() == made

        tick(shared)  # recorded already: not made again
        assert recorded() == made and on_server() == made
    database.dispose()


def test_a_live_agent_gets_its_scratch_slots_made_and_warmed_before_any_session(
    tmp_path: Path,
    opencode_server: OpenCodeServer,
    migrated_sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import asyncio

    from domain.session import Session
    from services.factory import ServiceFactory

    monkeypatch.setenv(WORKSPACES_DIR_VAR, str(tmp_path / "workspaces"))
    url = migrated_sqlite_url
    database = Database(url)
    with unit_of_work(database) as uow:
        for slug in TENANTS:
            uow.tenants.add(Tenant(slug=slug, name=slug.title()))
    supervision = SupervisionConfig(
        warm_slots_ahead=True, warm_slots_per_agent=2, workspaces_per_health_tick=3
    )

    def tick() -> str | None:
        return health_tick(url, supervision)

    def slots(tenant: str) -> list[Path]:
        return sorted((tmp_path / "workspaces" / tenant / "sessions").glob("slot-*"))

    agents: dict[str, Agent] = {}
    for slug, names in TENANTS.items():
        with tenant_scope(slug), unit_of_work(database) as uow:
            for name in names:  # acme: two agents on one server
                agents[name] = uow.agents.add(
                    Agent(tenant_id=slug, name=name, server_url=opencode_server.url)
                )
            if slug == "globex":  # a dead agent is not warmed
                dead = f"http://127.0.0.1:{free_port()}"
                uow.agents.add(Agent(tenant_id=slug, name="dead", server_url=dead))

    # Three warm-ups a tick (the budget), two slots per live agent.
    assert tick() == "acme: 2/2 up, 3 slot(s) warmed; globex: 1/2 up"
    assert tick() == "acme: 2/2 up, 1 slot(s) warmed; globex: 1/2 up, 2 slot(s) warmed"
    assert tick() == "acme: 2/2 up; globex: 1/2 up"  # enough made: none more

    assert len(slots("acme")) == 4 and len(slots("globex")) == 2
    with httpx.Client(base_url=opencode_server.url, timeout=30) as client:
        for directory in slots("acme") + slots("globex"):
            assert sorted(p.name for p in directory.iterdir()) == [".git"]
            listed = client.get("/session", params={"directory": str(directory)}).json()
            assert [s for s in listed if s.get("directory") == str(directory)] == []
    assert list((tmp_path / "workspaces").rglob("*.claim")) == []  # all free

    # A session of acme's on agent "one" takes one of its warm slots.
    session = Session(tenant_id="acme", title="first", initial_prompt="do it")
    with tenant_scope("acme"), unit_of_work(database) as uow:
        uow.sessions.add(session)
    workspaces = ServiceFactory(database).session_workspaces()
    workspace = asyncio.run(workspaces.prepare(session, print, agents["one"].id))
    assert workspace.directory in slots("acme")
    database.dispose()
