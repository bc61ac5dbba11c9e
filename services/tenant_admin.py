"""The tenants of the platform: created, changed and deleted by the operator alone; read by each
tenant's callers (a tenant's caller sees only its own tenant), renamed by its ADMIN (its display
name only: whether it is active, its session limit and token budget stay the operator's).

Deleting is refused while the tenant's work is under way; then its worktrees leave the servers,
its managed runtime here stops, and its repositories' mirrors, sessions' workspaces and runtime
directories (HOME, workspaces) leave this host.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from domain.caller import Caller
from domain.errors import TenantBusy
from domain.tenant import Role, Tenant
from resources.database import Database, tenant_scope, unit_of_work
from resources.settings import workspaces_dir
from services.session_workspaces import WorkspaceLayout
from services.tenant_workspaces import WorkspaceRemoval, remove_tenant_workspaces


class RuntimeRetirer(Protocol):
    """`services.runtime_manager.RuntimeManager`: a deleted tenant's runtime is stopped and its
    directories removed."""

    def retire(self, caller: Caller, tenant_id: str, reason: str) -> tuple[bool, list[str]]: ...


@dataclass
class TenantDeletion:
    """What deleting a tenant did on the servers and this host (the CLI says each)."""

    worktrees: list[WorkspaceRemoval] = field(default_factory=list)
    runtime_stopped: bool = False
    runtime_removed: list[str] = field(default_factory=list)  # its runtime directories


class TenantAdmin:
    def __init__(
        self, database: Database, runtimes: Callable[[], RuntimeRetirer] | None = None
    ) -> None:
        self._database = database
        self._runtimes = runtimes  # built when a tenant is deleted (it touches this host)

    def create(self, caller: Caller, tenant: Tenant) -> Tenant:
        """A new tenant (`AlreadyExists` when the slug is taken)."""
        caller.require_operator("create a tenant")
        with unit_of_work(self._database) as uow:
            return uow.tenants.add(tenant)

    def list(self, caller: Caller, include_inactive: bool = True) -> list[Tenant]:
        """Every tenant for the operator; a tenant's caller sees its own tenant only."""
        if caller.is_operator:
            with unit_of_work(self._database) as uow:
                return uow.tenants.list(include_inactive=include_inactive)
        assert caller.tenant_id is not None
        tenant = self.get(caller, caller.tenant_id)
        return [tenant] if tenant.active or include_inactive else []

    def get(self, caller: Caller, slug: str) -> Tenant:
        caller.require_tenant(slug)
        caller.require(Role.VIEWER, "read a tenant")
        with unit_of_work(self._database) as uow:
            return uow.tenants.get(slug)

    def rename(self, caller: Caller, slug: str, name: str) -> Tenant:
        """A new display name (the slug, the tenant's identity, never changes)."""
        caller.require_tenant(slug)
        caller.require(Role.ADMIN, "rename a tenant")
        with unit_of_work(self._database) as uow:
            tenant = uow.tenants.get_for_update(slug)
            tenant.name = name  # its rules: InvalidInput
            return uow.tenants.update(tenant)

    def deactivate(self, caller: Caller, slug: str) -> Tenant:
        """The tenant starts no new work; its data and history stay."""
        caller.require_operator("deactivate a tenant")
        with unit_of_work(self._database) as uow:
            tenant = uow.tenants.get(slug)
            tenant.active = False
            return uow.tenants.update(tenant)

    def delete(self, caller: Caller, slug: str) -> TenantDeletion:
        """Soft-delete the tenant (hidden from listings and partitions, its records kept), stop
        its runtime and remove its worktrees and directories; `TenantBusy` while it has active
        sessions, nothing changed."""
        caller.require_operator("delete a tenant")
        # In the tenant's scope (row-level security lets the count see its sessions), under the
        # tenant row lock that claims take: no session becomes active between count and delete.
        with tenant_scope(slug), unit_of_work(self._database) as uow:
            uow.tenants.get_for_update(slug)
            active = uow.sessions.count_active()
            if active:
                raise TenantBusy(slug, active)
            uow.tenants.delete(slug)  # first: no new wave of the tenant starts meanwhile
            uow.agent_servers.release_all()  # its servers may serve another tenant later
        deletion = TenantDeletion()
        if self._runtimes is not None:  # its sandboxed server first: it has the files open
            stopped, removed = self._runtimes().retire(caller, slug, "the tenant was deleted")
            deletion.runtime_stopped, deletion.runtime_removed = stopped, removed
        deletion.worktrees = asyncio.run(remove_tenant_workspaces(self._database, slug))
        # Its repositories' mirrors and sessions' worktrees on this host (none is in use).
        shutil.rmtree(WorkspaceLayout(workspaces_dir()).tenant(slug), ignore_errors=True)
        return deletion
