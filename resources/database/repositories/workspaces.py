"""The current tenant's workspaces on agent servers: which worktree its sessions use where.

The database decides races between waves that start at once: the first to record a workspace
on a server wins (`AlreadyExists` for the others), and a replacement holds only over the record
as it was read (`ConcurrentModification` otherwise). No lock is held while anyone waits for a
server.
"""

from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from domain.clock import utcnow
from domain.errors import AlreadyExists, ConcurrentModification, NotFound
from domain.workspace import TenantWorkspace
from resources.database.repositories.base import TenantScopedRepository
from resources.database.schema import TenantWorkspaceRow


def _to_domain(row: TenantWorkspaceRow) -> TenantWorkspace:
    return TenantWorkspace(
        tenant_id=row.tenant_id,
        server_url=row.server_url,
        directory=row.directory,
        version=row.version,
        created_at=row.created_at,
    )


class TenantWorkspaceRepository(TenantScopedRepository):
    kind = "tenant workspace"

    def find(self, server_url: str) -> TenantWorkspace | None:
        """The workspace recorded on that server; None when there is none yet."""
        row = self._session.scalars(
            select(TenantWorkspaceRow).where(
                TenantWorkspaceRow.tenant_id == self.tenant_id,
                TenantWorkspaceRow.server_url == server_url,
            )
        ).first()
        return None if row is None else _to_domain(row)

    def list(self) -> list[TenantWorkspace]:
        query = (
            select(TenantWorkspaceRow)
            .where(TenantWorkspaceRow.tenant_id == self.tenant_id)
            .order_by(TenantWorkspaceRow.server_url)
        )
        return [_to_domain(row) for row in self._session.scalars(query)]

    def add(self, workspace: TenantWorkspace) -> TenantWorkspace:
        """Record it; `AlreadyExists` if the tenant has one on that server (a concurrent wave
        recorded its own first). Under a savepoint: the transaction stays usable."""
        row = TenantWorkspaceRow(
            tenant_id=self._owned(workspace.tenant_id),
            server_url=workspace.server_url,
            directory=workspace.directory,
            version=workspace.version,
            created_at=workspace.created_at,
        )
        try:
            with self._session.begin_nested():
                self._session.add(row)
                self._session.flush()
        except IntegrityError:
            if self.find(workspace.server_url) is not None:
                raise AlreadyExists(self.kind, workspace.server_url) from None
            raise
        return workspace

    def replace(self, workspace: TenantWorkspace, directory: str) -> TenantWorkspace:
        """The record of `workspace`'s server now names `directory`, if it is still as read
        (same directory and version): `ConcurrentModification` when another wave replaced it
        first, `NotFound` when it is gone."""
        self._owned(workspace.tenant_id)
        replaced = workspace.model_copy(
            update={
                "directory": directory,
                "version": workspace.version + 1,
                "created_at": utcnow(),
            }
        )
        result = self._session.execute(
            update(TenantWorkspaceRow)
            .where(
                TenantWorkspaceRow.tenant_id == self.tenant_id,
                TenantWorkspaceRow.server_url == workspace.server_url,
                TenantWorkspaceRow.directory == workspace.directory,
                TenantWorkspaceRow.version == workspace.version,
            )
            .values(
                directory=replaced.directory,
                version=replaced.version,
                created_at=replaced.created_at,
            )
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            if self.find(workspace.server_url) is None:
                raise NotFound(self.kind, workspace.server_url)
            raise ConcurrentModification(self.kind, workspace.server_url, "any", workspace.version)
        return replaced

    def remove(self, server_url: str) -> None:
        """Forget the workspace on that server (its worktree is the caller's to remove)."""
        result = self._session.execute(
            delete(TenantWorkspaceRow)
            .where(
                TenantWorkspaceRow.tenant_id == self.tenant_id,
                TenantWorkspaceRow.server_url == server_url,
            )
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            raise NotFound(self.kind, server_url)
