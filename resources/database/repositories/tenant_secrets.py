"""The current tenant's secrets, as sealed text: this layer never sees a clear value (sealing and
opening is the service's, with `resources.secret_box`)."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from domain.clock import utcnow
from domain.errors import NotFound
from domain.tenant_secret import TenantSecret
from resources.database.repositories.base import TenantScopedRepository
from resources.database.schema import TenantSecretRow


def _to_domain(row: TenantSecretRow) -> TenantSecret:
    return TenantSecret(
        tenant_id=row.tenant_id, name=row.name, created_at=row.created_at, updated_at=row.updated_at
    )


class TenantSecretRepository(TenantScopedRepository):
    kind = "secret"

    def put(self, name: str, sealed: str) -> TenantSecret:
        """Store the sealed value under `name`, replacing the tenant's earlier one."""
        tenant = self.tenant_id
        now = utcnow()
        row = self._row(name)
        if row is not None:
            row.sealed, row.updated_at = sealed, now
            self._session.flush()
            return _to_domain(row)
        secret = TenantSecret(tenant_id=tenant, name=name, created_at=now, updated_at=now)
        try:
            with self._session.begin_nested():
                self._session.add(
                    TenantSecretRow(
                        tenant_id=tenant, name=name, sealed=sealed, created_at=now, updated_at=now
                    )
                )
                self._session.flush()
        except IntegrityError:
            if self._row(name) is None:
                raise
            return self.put(name, sealed)  # set at the same moment elsewhere: last one wins
        return secret

    def sealed(self, name: str) -> str:
        """The sealed value (`NotFound` when the tenant has no such secret)."""
        row = self._row(name)
        if row is None:
            raise NotFound(self.kind, name)
        return row.sealed

    def list(self) -> list[TenantSecret]:
        query = (
            select(TenantSecretRow)
            .where(TenantSecretRow.tenant_id == self.tenant_id)
            .order_by(TenantSecretRow.name)
        )
        return [_to_domain(row) for row in self._session.scalars(query)]

    def delete(self, name: str) -> None:
        result = self._session.execute(
            delete(TenantSecretRow)
            .where(TenantSecretRow.tenant_id == self.tenant_id, TenantSecretRow.name == name)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            raise NotFound(self.kind, name)

    def _row(self, name: str) -> TenantSecretRow | None:
        return self._session.scalars(
            select(TenantSecretRow).where(
                TenantSecretRow.tenant_id == self.tenant_id, TenantSecretRow.name == name
            )
        ).first()
