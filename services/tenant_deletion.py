"""Deleting a tenant: refused while its work is under way, then its worktrees leave the servers.

Shared by the CLI and (later) the API, so both refuse and clean up alike.
"""

from __future__ import annotations

import asyncio

from domain.errors import TenantBusy
from resources.database import Database, tenant_scope, unit_of_work
from services.tenant_workspaces import WorkspaceRemoval, remove_tenant_workspaces


def delete_tenant(database: Database, slug: str) -> list[WorkspaceRemoval]:
    """Soft-delete the tenant (hidden from listings and partitions, its records kept) and
    remove its worktrees; `TenantBusy` while it has active sessions, nothing changed."""
    # In the tenant's scope (row-level security lets the count see its sessions), under the
    # tenant row lock that claims take: no session becomes active between count and delete.
    with tenant_scope(slug), unit_of_work(database) as uow:
        uow.tenants.get_for_update(slug)
        active = uow.sessions.count_active()
        if active:
            raise TenantBusy(slug, active)
        uow.tenants.delete(slug)  # first: no new wave of the tenant starts meanwhile
    return asyncio.run(remove_tenant_workspaces(database, slug))
