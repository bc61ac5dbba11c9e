"""A tenant's secrets (repository credentials and the like): set and deleted by its ADMIN, their
names listed from LEAD up, their values never shown to anyone.

Values are sealed with the platform's key (`resources.secret_box`) before they reach the
database and opened only by `reveal_for_operation`, which the platform itself calls for the
operation that needs one (cloning a tenant's repository, say): no caller of a tenant can read a
value back, and nothing here logs one or puts one in an error.
"""

from __future__ import annotations

from domain.caller import Caller
from domain.errors import InvalidInput
from domain.tenant import Role
from domain.tenant_secret import TenantSecret, secret_value_problem
from resources.database import Database, tenant_scope, unit_of_work
from resources.secret_box import SecretBox, secret_box_from_environment

WRITE_ROLE = Role.ADMIN
LIST_ROLE = Role.LEAD


class TenantSecrets:
    def __init__(self, database: Database, box: SecretBox | None = None) -> None:
        self._database = database
        self._box = box  # None: the platform's key, loaded when first needed

    def set(self, caller: Caller, tenant_id: str, name: str, value: str) -> TenantSecret:
        """Store `value` sealed under `name` (replacing an earlier one); the record says when,
        never what."""
        caller.require_tenant(tenant_id)
        caller.require(WRITE_ROLE, "set a tenant secret")
        TenantSecret(tenant_id=tenant_id, name=name)  # the name's rules: InvalidInput
        problem = secret_value_problem(value)
        if problem:
            raise InvalidInput("secret", problem)
        sealed = self._secret_box().seal(value)
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            uow.tenants.get(tenant_id)  # an unknown tenant: NotFound
            return uow.secrets.put(name, sealed)

    def list(self, caller: Caller, tenant_id: str) -> list[TenantSecret]:
        """Names and times, no values."""
        caller.require_tenant(tenant_id)
        caller.require(LIST_ROLE, "list tenant secrets")
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            uow.tenants.get(tenant_id)
            return uow.secrets.list()

    def delete(self, caller: Caller, tenant_id: str, name: str) -> None:
        caller.require_tenant(tenant_id)
        caller.require(WRITE_ROLE, "delete a tenant secret")
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            uow.tenants.get(tenant_id)
            uow.secrets.delete(name)

    def reveal_for_operation(self, caller: Caller, tenant_id: str, name: str) -> str:
        """The clear value, for the platform's own use in one operation (the operator only):
        hand it to that operation and let it go; never log, store or return it onwards.
        `NotFound` when the tenant has no such secret, `SecretUnreadable` when the key cannot
        open it."""
        caller.require_operator("reveal a tenant secret")
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            sealed = uow.secrets.sealed(name)
        return self._secret_box().open(sealed, what=f"secret {name!r} of tenant {tenant_id!r}")

    def reveal(self, tenant_id: str, name: str) -> str:
        """`services.session_workspaces.SecretReader`: for the platform's own operations (a
        repository's fetch and push, a promoted model's inference key)."""
        return self.reveal_for_operation(Caller.operator(), tenant_id, name)

    def _secret_box(self) -> SecretBox:
        if self._box is None:
            self._box = secret_box_from_environment()
        return self._box
