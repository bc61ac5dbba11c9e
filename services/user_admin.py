"""A tenant's users and their roles: written by the tenant's ADMIN (or the operator), read by any
of its callers from VIEWER up."""

from __future__ import annotations

from domain.caller import Caller
from domain.tenant import Role, User
from resources.database import Database, tenant_scope, unit_of_work


class UserAdmin:
    def __init__(self, database: Database) -> None:
        self._database = database

    def create(self, caller: Caller, user: User) -> User:
        """A new user of `user.tenant_id` (`AlreadyExists` when its e-mail is taken there)."""
        caller.require_tenant(user.tenant_id)
        caller.require(Role.ADMIN, "create a user")
        with tenant_scope(user.tenant_id), unit_of_work(self._database) as uow:
            uow.tenants.get(user.tenant_id)  # an unknown tenant: NotFound
            return uow.users.add(user)

    def list(self, caller: Caller, tenant_id: str) -> list[User]:
        caller.require_tenant(tenant_id)
        caller.require(Role.VIEWER, "list users")
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            uow.tenants.get(tenant_id)
            return uow.users.list()
