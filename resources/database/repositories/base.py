"""What every tenant-scoped repository shares: the unit of work and the current tenant."""

from __future__ import annotations

from sqlalchemy.orm import Session

from domain.errors import TenantMismatch
from resources.database.tenant_context import current_tenant_id


class TenantScopedRepository:
    """Reads the tenant from the context on every call, so a forgotten scope fails loudly."""

    kind: str = "record"

    def __init__(self, session: Session) -> None:
        self._session = session

    @property
    def tenant_id(self) -> str:
        return current_tenant_id(f"{type(self).__name__} query")

    def _owned(self, record_tenant: str) -> str:
        """The current tenant, after checking a record to be written belongs to it."""
        tenant = self.tenant_id
        if record_tenant != tenant:
            raise TenantMismatch(tenant, record_tenant)
        return tenant
