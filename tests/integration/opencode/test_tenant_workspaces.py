"""A tenant's workspace on a real OpenCode server, agreed on through the database.

Contract, on SQLite and on PostgreSQL: waves of one tenant starting at the same moment on one
server (each with its own event loop, client and database engine, as two run processes would)
end with one worktree of that tenant's on the server and the same directory for both; a
recorded worktree gone from its server is replaced by one new worktree, racers included; and
deleting a tenant removes its worktrees from the servers (another tenant's stay).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import httpx
import pytest

from domain.agent import Agent
from domain.workspace import TenantWorkspace
from resources.database import Database, tenant_scope, unit_of_work
from resources.opencode.client import OpenCodeClient
from services.tenant_workspaces import (
    WorkspaceRemoval,
    remove_tenant_workspaces,
    tenant_workspace,
    workspace_name,
)
from standins.opencode_server import OpenCodeServer
from tests.conftest import migrated_url
from tests.integration.database.support import BACKENDS, in_threads, new_tenant

pytestmark = pytest.mark.timeout(120)

RACERS = 2
OPENCODE_SHARED_SERVER = True  # read by the opencode_server fixture: one server for the package


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest) -> Iterator[Database]:
    url = migrated_url(request)
    database = Database(url)
    yield database
    database.dispose()


def racing_waves(
    database: Database, server: OpenCodeServer, tenant: str, racers: int = RACERS
) -> list[str]:
    """`tenant_workspace` in `racers` threads released together, each with its own event loop,
    OpenCode client and database engine (as run processes have); the directories answered."""
    answers: list[str] = []

    async def wave(engine: Database) -> str:
        async with OpenCodeClient(server.url) as client:
            return await tenant_workspace(client, tenant, engine)

    def run(_: int) -> None:
        engine = Database(database.url)
        try:
            answers.append(asyncio.run(wave(engine)))
        finally:
            engine.dispose()

    in_threads(racers, run)
    return answers


def tenant_worktrees(client: httpx.Client, tenant: str) -> list[str]:
    """The server's worktrees named after the tenant (suffixed duplicates included)."""
    response = client.get("/experimental/worktree")
    assert response.status_code == 200, response.text
    name = workspace_name(tenant)
    return [d for d in response.json() if PurePosixPath(d).name.startswith(name)]


def recorded(database: Database, tenant: str) -> list[TenantWorkspace]:
    with tenant_scope(tenant), unit_of_work(database) as uow:
        return uow.workspaces.list()


def test_waves_starting_at_once_on_one_server_share_one_worktree(
    database: Database, opencode_server: OpenCodeServer, opencode_client: httpx.Client
) -> None:
    tenant = new_tenant(database)

    answers = racing_waves(database, opencode_server, tenant)

    assert len(answers) == RACERS and len(set(answers)) == 1
    assert tenant_worktrees(opencode_client, tenant) == answers[:1]
    assert [w.directory for w in recorded(database, tenant)] == answers[:1]
    assert (Path(answers[0]) / "README.md").exists()  # checked out, ready for sessions


def test_a_worktree_gone_from_its_server_is_replaced_by_one_new_worktree(
    database: Database, opencode_server: OpenCodeServer, opencode_client: httpx.Client
) -> None:
    tenant = new_tenant(database)
    [first] = racing_waves(database, opencode_server, tenant, racers=1)
    gone = opencode_client.request("DELETE", "/experimental/worktree", json={"directory": first})
    assert gone.status_code == 200, gone.text  # as after a reset of the server's data

    answers = racing_waves(database, opencode_server, tenant)

    assert len(set(answers)) == 1
    assert tenant_worktrees(opencode_client, tenant) == answers[:1]
    [workspace] = recorded(database, tenant)
    assert (workspace.directory, workspace.version) == (answers[0], 2)
    assert (Path(answers[0]) / "README.md").exists()


def test_deleting_a_tenant_removes_its_worktrees_from_the_server(
    database: Database, opencode_server: OpenCodeServer, opencode_client: httpx.Client
) -> None:
    tenant, other = new_tenant(database), new_tenant(database)
    with tenant_scope(tenant), unit_of_work(database) as uow:
        uow.agents.add(Agent(tenant_id=tenant, name="builder", server_url=opencode_server.url))
    [directory] = racing_waves(database, opencode_server, tenant, racers=1)
    [kept] = racing_waves(database, opencode_server, other, racers=1)
    with unit_of_work(database) as uow:
        uow.tenants.delete(tenant)

    removals = asyncio.run(remove_tenant_workspaces(database, tenant))

    assert removals == [WorkspaceRemoval(opencode_server.url, directory)]
    assert tenant_worktrees(opencode_client, tenant) == []
    assert not Path(directory).exists()
    assert recorded(database, tenant) == []
    assert tenant_worktrees(opencode_client, other) == [kept]
