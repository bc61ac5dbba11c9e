"""The current tenant's code repositories, by name."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from domain.code_repository import CodeRepository
from domain.errors import AlreadyExists, NotFound
from resources.database.repositories.base import TenantScopedRepository
from resources.database.schema import CodeRepositoryRow


def _to_domain(row: CodeRepositoryRow) -> CodeRepository:
    return CodeRepository(
        tenant_id=row.tenant_id,
        name=row.name,
        url=row.url,
        default_ref=row.default_ref,
        credentials_secret=row.credentials_secret,
        setup_script=row.setup_script,
        created_at=row.created_at,
    )


class CodeRepositoryRepository(TenantScopedRepository):
    kind = "repository"

    def add(self, repository: CodeRepository) -> CodeRepository:
        """Record it; `AlreadyExists` when the tenant has one of that name (under a savepoint:
        the transaction stays usable)."""
        row = CodeRepositoryRow(
            tenant_id=self._owned(repository.tenant_id),
            name=repository.name,
            url=repository.url,
            default_ref=repository.default_ref,
            credentials_secret=repository.credentials_secret,
            setup_script=repository.setup_script,
            created_at=repository.created_at,
        )
        try:
            with self._session.begin_nested():
                self._session.add(row)
                self._session.flush()
        except IntegrityError:
            raise AlreadyExists(self.kind, repository.name) from None
        return repository

    def find(self, name: str) -> CodeRepository | None:
        row = self._session.scalars(
            select(CodeRepositoryRow).where(
                CodeRepositoryRow.tenant_id == self.tenant_id, CodeRepositoryRow.name == name
            )
        ).first()
        return None if row is None else _to_domain(row)

    def get(self, name: str) -> CodeRepository:
        found = self.find(name)
        if found is None:
            raise NotFound(self.kind, name)
        return found

    def list(self) -> list[CodeRepository]:
        query = (
            select(CodeRepositoryRow)
            .where(CodeRepositoryRow.tenant_id == self.tenant_id)
            .order_by(CodeRepositoryRow.name)
        )
        return [_to_domain(row) for row in self._session.scalars(query)]

    def remove(self, name: str) -> None:
        result = self._session.execute(
            delete(CodeRepositoryRow)
            .where(CodeRepositoryRow.tenant_id == self.tenant_id, CodeRepositoryRow.name == name)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            raise NotFound(self.kind, name)
