"""What every tenant-scoped repository shares: the unit of work and the current tenant."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from domain.errors import NotFound, TenantMismatch
from resources.database.tenant_context import current_tenant_id


class TenantScopedRepository:
    """Reads the tenant from the context on every call, so a forgotten scope fails loudly."""

    kind: str = "record"

    def __init__(self, session: Session) -> None:
        self._session = session

    @property
    def tenant_id(self) -> str:
        return current_tenant_id(f"{type(self).__name__} query")

    def _connection(self) -> Connection:
        """The transaction's connection, for a Core statement that needs nothing of the ORM
        (going through `Session.execute`, its ORM compile step was a quarter of a statement's
        cost on the API's submission path); what the ORM holds unsent is flushed first, as
        `Session.execute` would."""
        self._session.flush()
        return self._session.connection()

    def _owned(self, record_tenant: str) -> str:
        """The current tenant, after checking a record to be written belongs to it."""
        tenant = self.tenant_id
        if record_tenant != tenant:
            raise TenantMismatch(tenant, record_tenant)
        return tenant

    def _require_own(self, row_type: Any, key: str | None, kind: str) -> None:
        """`NotFound` unless `key` is None or the id of a `row_type` row of the current tenant.

        Checked before writing a reference (parent, session, job): a foreign key alone accepts
        another tenant's id (and PostgreSQL runs foreign-key checks without row-level security),
        which would link the tenants' records and reveal that the other tenant's id exists.
        """
        if key is None:
            return
        found = self._session.scalar(
            select(row_type.id).where(row_type.tenant_id == self.tenant_id, row_type.id == key)
        )
        if found is None:
            raise NotFound(kind, key)
