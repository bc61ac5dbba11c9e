"""Who an API key is: the caller every service then checks roles against.

A key acts for its tenant with its own role capped at its user's role now (a user demoted
after the key was made demotes the key); it is refused (`KeyRefused`, one answer for every
cause) when unknown or revoked, when its tenant is deleted or deactivated, or when its user is
suspended or gone.
"""

from __future__ import annotations

from domain.caller import Caller
from domain.errors import KeyRefused, NotFound, TenantNotSet
from resources.database import Database, tenant_scope, unit_of_work


class Authentication:
    def __init__(self, database: Database) -> None:
        self._database = database

    def authenticate(self, tenant_id: str, plaintext: str) -> Caller:
        """The caller `plaintext` (a key of `tenant_id`) acts as, else `KeyRefused`."""
        try:
            with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
                if not uow.tenants.get(tenant_id).active:
                    raise KeyRefused()
                key = uow.api_keys.authenticate(plaintext)
                role = key.role
                if key.user_id is not None:
                    user = uow.users.get(key.user_id)
                    if not user.active:
                        raise KeyRefused()
                    role = role.capped_at(user.role)
        except (NotFound, TenantNotSet):
            raise KeyRefused() from None
        return Caller.for_tenant(tenant_id, role, user_id=key.user_id)
