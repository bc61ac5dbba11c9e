"""A tenant's API keys: created and revoked by the tenant's ADMIN (or the operator), listed by any
of its callers from VIEWER up. A key's plaintext is returned once, at creation; only its hash is
stored. A key owned by a user acts at most with that user's role (checked at creation here, and
at every authentication in `services.authentication`)."""

from __future__ import annotations

from domain.api_key import ApiKey
from domain.caller import Caller
from domain.errors import InvalidInput
from domain.tenant import Role
from resources.database import Database, tenant_scope, unit_of_work


class ApiKeyAdmin:
    def __init__(self, database: Database) -> None:
        self._database = database

    def create(
        self,
        caller: Caller,
        tenant_id: str,
        name: str,
        role: Role = Role.MEMBER,
        user_email: str | None = None,
    ) -> tuple[ApiKey, str]:
        """A new key acting with `role`, owned by the tenant's user `user_email` if given
        (`NotFound` when there is no such user): the record and the plaintext to show once.
        A key acts for its user, so a role above the user's is refused (`InvalidInput`)."""
        caller.require_tenant(tenant_id)
        caller.require(Role.ADMIN, "create an API key")
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            uow.tenants.get(tenant_id)  # an unknown tenant: NotFound
            user = uow.users.get_by_email(user_email) if user_email else None
            if user is not None and not user.role.at_least(role):
                raise InvalidInput(
                    "role",
                    f"{role.value} is above the role {user.role.value} of its user "
                    f"{user.email}: a key acts at most with its user's role",
                )
            return uow.api_keys.create(name=name, role=role, user_id=user and user.id)

    def list(self, caller: Caller, tenant_id: str) -> list[ApiKey]:
        """The tenant's keys: prefixes only, the keys themselves are never stored."""
        caller.require_tenant(tenant_id)
        caller.require(Role.VIEWER, "list API keys")
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            uow.tenants.get(tenant_id)
            return uow.api_keys.list()

    def revoke(self, caller: Caller, tenant_id: str, key_id: str) -> ApiKey:
        """The key stops authenticating at once (revoking twice keeps the first moment)."""
        caller.require_tenant(tenant_id)
        caller.require(Role.ADMIN, "revoke an API key")
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            uow.tenants.get(tenant_id)
            return uow.api_keys.revoke(key_id)
