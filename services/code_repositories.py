"""A tenant's code repositories: registering, reading and removing them, for every caller.

Roles are checked here: registering and removing need LEAD or higher of the repository's
tenant (or the operator), reading needs VIEWER. A repository's credentials are only the name of
a tenant secret: its value is never stored here, and is read only for the git process that
fetches or pushes (`services.session_workspaces`).
"""

from __future__ import annotations

from domain.caller import Caller
from domain.code_repository import CodeRepository
from domain.errors import InvalidInput
from domain.tenant import Role
from resources.database import Database, tenant_scope, unit_of_work
from resources.runtime_host.local_remotes import platform_path_problem

WRITE_ROLE = Role.LEAD
READ_ROLE = Role.VIEWER


class CodeRepositories:
    def __init__(self, database: Database) -> None:
        self._database = database

    def register(self, caller: Caller, repository: CodeRepository) -> CodeRepository:
        """Add it; `AlreadyExists` when the tenant has one of that name, `InvalidInput` for a
        `file://` remote inside the platform's own directories."""
        _allow(caller, repository.tenant_id, WRITE_ROLE, "registering a repository")
        problem = platform_path_problem(repository.url)
        if problem is not None:
            raise InvalidInput("url", problem)
        with tenant_scope(repository.tenant_id), unit_of_work(self._database) as uow:
            uow.tenants.get(repository.tenant_id)
            return uow.code_repositories.add(repository)

    def remove(self, caller: Caller, tenant_id: str, name: str) -> CodeRepository:
        """Forget it (its sessions keep their history; one not yet started then fails)."""
        _allow(caller, tenant_id, WRITE_ROLE, "removing a repository")
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            repository = uow.code_repositories.get(name)
            uow.code_repositories.remove(name)
        return repository

    def list(self, caller: Caller, tenant_id: str) -> list[CodeRepository]:
        _allow(caller, tenant_id, READ_ROLE, "reading repositories")
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            return uow.code_repositories.list()

    def get(self, caller: Caller, tenant_id: str, name: str) -> CodeRepository:
        _allow(caller, tenant_id, READ_ROLE, "reading repositories")
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            return uow.code_repositories.get(name)


def _allow(caller: Caller, tenant_id: str, role: Role, action: str) -> None:
    caller.require_tenant(tenant_id)
    caller.require(role, action)
