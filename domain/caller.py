"""Who asks: the identity every service write takes, so roles are checked in one place.

The operator (the `indorch` CLI on the control plane's host, the sensors and the wave runs) acts
for the platform; an API caller acts for one tenant with its key's role.
"""

from __future__ import annotations

from domain.domain_model import ValueObject
from domain.errors import PermissionDenied, TenantMismatch
from domain.tenant import Role


class Caller(ValueObject):
    tenant_id: str | None = None  # None: the platform operator, not bound to one tenant
    user_id: str | None = None
    role: Role = Role.ADMIN

    @classmethod
    def operator(cls) -> Caller:
        """The control plane itself (CLI, sensors, runs): every role, every tenant."""
        return cls()

    @classmethod
    def for_tenant(cls, tenant_id: str, role: Role, user_id: str | None = None) -> Caller:
        return cls(tenant_id=tenant_id, user_id=user_id, role=role)

    @property
    def is_operator(self) -> bool:
        return self.tenant_id is None

    def require(self, role: Role, action: str) -> None:
        """Raise `PermissionDenied` unless the caller holds `role` or a higher one."""
        if not self.role.at_least(role):
            raise PermissionDenied(action, role.value, self.role.value)

    def require_operator(self, action: str) -> None:
        """Platform-wide actions (creating, changing, deleting tenants) are the operator's alone:
        a tenant's caller is refused whatever its role."""
        if not self.is_operator:
            raise PermissionDenied(action, "operator", f"{self.role.value} of {self.tenant_id}")

    def require_tenant(self, tenant_id: str) -> None:
        """A tenant's caller may act only on its own tenant (the operator on any)."""
        if self.tenant_id is not None and self.tenant_id != tenant_id:
            raise TenantMismatch(self.tenant_id, tenant_id)
