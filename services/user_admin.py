"""A tenant's users and their roles: written by the tenant's ADMIN (or the operator), read by any
of its callers from VIEWER up. A user's role caps its keys' roles, and a suspended user's keys
stop authenticating (see `services.authentication`), so demoting or suspending a user takes
effect on its keys at once."""

from __future__ import annotations

from domain.caller import Caller
from domain.tenant import Role, User
from resources.database import Database, UnitOfWork, tenant_scope, unit_of_work


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

    def get(self, caller: Caller, tenant_id: str, user: str) -> User:
        """The tenant's user by e-mail or id (`NotFound` otherwise)."""
        caller.require_tenant(tenant_id)
        caller.require(Role.VIEWER, "read a user")
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            uow.tenants.get(tenant_id)
            return find_user(uow, user)

    def set_role(self, caller: Caller, tenant_id: str, user: str, role: Role) -> User:
        """Give the user (e-mail or id) another role; its keys act at most with it from now."""
        return self._change(caller, tenant_id, user, "change a user's role", role=role)

    def suspend(self, caller: Caller, tenant_id: str, user: str) -> User:
        """The user's keys stop authenticating until it is reactivated."""
        return self._change(caller, tenant_id, user, "suspend a user", active=False)

    def reactivate(self, caller: Caller, tenant_id: str, user: str) -> User:
        return self._change(caller, tenant_id, user, "reactivate a user", active=True)

    def _change(
        self, caller: Caller, tenant_id: str, user: str, action: str, **fields: object
    ) -> User:
        caller.require_tenant(tenant_id)
        caller.require(Role.ADMIN, action)
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            uow.tenants.get(tenant_id)
            found = find_user(uow, user)
            return uow.users.save(found.model_copy(update=fields))


def find_user(uow: UnitOfWork, user: str) -> User:
    """The current tenant's user by e-mail (anything with an @) or id (`NotFound` otherwise)."""
    return uow.users.get_by_email(user) if "@" in user else uow.users.get(user)
