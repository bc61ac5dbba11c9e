"""A tenant's own workspace on each OpenCode server: a git worktree named after the tenant.

Agents of several tenants may point at one server; its default workspace would let one
tenant's session read and change another's files. Each tenant's sessions work in the worktree
`tenant-<slug>-<6 hex>` instead (shared by that tenant's sessions, kept between them: a worktree
is a server instance of its own, ~60 MB of the server's memory, so not one per session). Each
new worktree gets a name never used before, so it never reuses the path of a removed one.

Waves of one tenant may start at the same moment in different processes, on different machines:
the database, not the server, says which worktree is the tenant's (`TenantWorkspaceRepository`).
No transaction is open while a server is called: a wave creates a worktree, then records it;
the loser of that race removes its own worktree and uses the winner's.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass

from domain.agent import Agent
from domain.errors import AlreadyExists, ConcurrentModification, NotFound
from domain.workspace import TenantWorkspace
from resources.database import Database, tenant_scope, unit_of_work
from resources.opencode.client import OpenCodeClient
from resources.opencode.control import client_for
from resources.opencode.errors import AgentServerError
from services.supervision.agent_server import WorktreeHost

logger = logging.getLogger(__name__)
ATTEMPTS = 4  # a lost race costs one; a create refused by a racer's concurrent create one more
CREATE_REFUSED_PAUSE_SECONDS = 0.5  # the racer whose create got through records it meanwhile


def workspace_name(tenant: str) -> str:
    """The name every worktree of the tenant's starts with."""
    return f"tenant-{tenant}"


def new_worktree_name(tenant: str) -> str:
    """A name no earlier worktree had: a new worktree never lands on the path of a removed one
    (the server may still be tearing that one down, and took a same-named successor with it)."""
    return f"{workspace_name(tenant)}-{secrets.token_hex(3)}"


async def tenant_workspace(client: WorktreeHost, tenant: str, database: Database) -> str:
    """The directory of the tenant's worktree on the client's server, created on first use and
    again when the server no longer has it. `AgentServerError` when the server fails."""
    server = client.base_url
    refused: AgentServerError | None = None
    for _ in range(ATTEMPTS):
        recorded = _find(database, tenant, server)
        if recorded is not None and recorded.directory in await client.worktrees():
            return recorded.directory
        try:
            created = (await client.create_worktree(new_worktree_name(tenant))).directory
        except AgentServerError as error:
            if error.status_code is None:  # unreachable, or never ready: not a racer's doing
                raise
            # Refused by the server (two creates at the same instant can collide in git).
            refused = error
            await asyncio.sleep(CREATE_REFUSED_PAUSE_SECONDS)
            continue
        try:
            return _record(database, tenant, server, created, recorded).directory
        except (AlreadyExists, ConcurrentModification, NotFound):
            winner = _find(database, tenant, server)
        if winner is not None and winner.directory == created:
            return created
        logger.info("tenant %s: another wave recorded its workspace on %s first", tenant, server)
        try:
            await client.remove_worktree(created)
        except AgentServerError as error:  # left over, unused; the next look asks the server
            logger.warning("tenant %s: worktree %s not removed: %s", tenant, created, error)
    raise refused or AgentServerError(
        server, f"tenant {tenant}: its workspace kept changing while being set up"
    )


async def prepare_tenant_workspace(client: WorktreeHost, tenant: str, database: Database) -> bool:
    """The tenant's workspace on the client's server made ahead of its sessions (a worktree
    takes seconds to make on a busy server, on the path of the first wave's every session):
    True when it was made now, False when one is recorded already (a wave checks that it is
    still on the server, and makes another if not). `AgentServerError` when the server fails."""
    if _find(database, tenant, client.base_url) is not None:
        return False
    await tenant_workspace(client, tenant, database)
    return True


def _find(database: Database, tenant: str, server: str) -> TenantWorkspace | None:
    with tenant_scope(tenant), unit_of_work(database) as uow:
        return uow.workspaces.find(server)


def _record(
    database: Database,
    tenant: str,
    server: str,
    directory: str,
    replacing: TenantWorkspace | None,
) -> TenantWorkspace:
    """The first record of the tenant's workspace on the server, or the replacement of the one
    read (gone from the server)."""
    with tenant_scope(tenant), unit_of_work(database) as uow:
        if replacing is None:
            workspace = TenantWorkspace(tenant_id=tenant, server_url=server, directory=directory)
            return uow.workspaces.add(workspace)
        return uow.workspaces.replace(replacing, directory)


# --- when the tenant is deleted --------------------------------------------------------------


@dataclass(frozen=True)
class WorkspaceRemoval:
    """What became of one of a deleted tenant's worktrees."""

    server_url: str
    directory: str
    error: str | None = None  # why it is still on the server; None: removed


async def remove_tenant_workspaces(database: Database, tenant: str) -> list[WorkspaceRemoval]:
    """Remove the tenant's worktree from every server it has one on, each server on its own
    (an unreachable one is reported, the others still done); the records go in every case.

    For a deleted tenant: a wave still running for it may be using them.
    """
    with tenant_scope(tenant), unit_of_work(database) as uow:
        workspaces = uow.workspaces.list()
        agents = {agent.server_url: agent for agent in uow.agents.list()}
    removals = await asyncio.gather(
        *(_remove(workspace, agents.get(workspace.server_url)) for workspace in workspaces)
    )
    with tenant_scope(tenant), unit_of_work(database) as uow:
        for workspace in workspaces:
            uow.workspaces.remove(workspace.server_url)
    return list(removals)


async def _remove(workspace: TenantWorkspace, agent: Agent | None) -> WorkspaceRemoval:
    """One server's worktree, with the password of the tenant's agent on that server if any."""
    server, directory = workspace.server_url, workspace.directory
    client = client_for(agent) if agent else OpenCodeClient(server)
    try:
        async with client:
            await client.remove_worktree(directory)
    except (AgentServerError, ValueError) as error:  # ValueError: not an OpenCode answer
        return WorkspaceRemoval(server, directory, str(error))
    return WorkspaceRemoval(server, directory)
