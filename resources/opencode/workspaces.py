"""A tenant's own workspace on an OpenCode server: a git worktree named after the tenant.

Agents of several tenants may point at one server; its default workspace would let one
tenant's session read and change another's files. Each tenant's sessions work in the worktree
`tenant-<slug>` instead (shared by that tenant's sessions, kept between them: a worktree is a
server instance of its own, ~60 MB of the server's memory, so not one per session).
"""

from __future__ import annotations

from pathlib import PurePosixPath

from resources.opencode.client import OpenCodeClient


def workspace_name(tenant: str) -> str:
    return f"tenant-{tenant}"


async def tenant_workspace(client: OpenCodeClient, tenant: str) -> str:
    """The directory of the tenant's worktree on this server, created on first use."""
    name = workspace_name(tenant)
    for directory in await client.worktrees():
        if PurePosixPath(directory).name == name:
            return directory
    return (await client.create_worktree(name)).directory
