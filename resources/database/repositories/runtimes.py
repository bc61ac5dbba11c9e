"""Managed runtimes of the current tenant (one per host), and the one read across tenants that
tells the runtime manager which tenant scopes to enter (`tenants_with_runtimes`; on PostgreSQL a
SECURITY DEFINER function of migration 0012 that answers slugs only)."""

from __future__ import annotations

from sqlalchemy import delete, select, text, update
from sqlalchemy.orm import Session

from domain.errors import ConcurrentModification, NotFound
from domain.runtime import Runtime, RuntimeStatus
from resources.database.repositories.base import TenantScopedRepository
from resources.database.schema import RuntimeRow

_FIELDS = (
    "os_user",
    "status",
    "sandboxed",
    "port",
    "pid",
    "process_start",
    "agent_id",
    "reason",
    "restarts",
    "resident_mb",
    "started_at",
    "last_busy_at",
    "waiting_since",
)
# The body of migration 0012's function; a change here is a new migration there.
_TENANTS_WITH_RUNTIMES_SQL = """
    SELECT DISTINCT r.tenant_id FROM runtimes r
    WHERE (SELECT t.active AND t.deleted_at IS NULL FROM tenants t WHERE t.slug = r.tenant_id)
    ORDER BY r.tenant_id
"""


def _to_domain(row: RuntimeRow) -> Runtime:
    values = {name: getattr(row, name) for name in _FIELDS}
    values["status"] = RuntimeStatus(row.status)
    return Runtime(
        tenant_id=row.tenant_id,
        host=row.host,
        version=row.version,
        created_at=row.created_at,
        **values,
    )


class RuntimeRepository(TenantScopedRepository):
    kind = "runtime"

    def get(self, host: str) -> Runtime | None:
        row = self._session.get(RuntimeRow, (self.tenant_id, host))
        return None if row is None else _to_domain(row)

    def get_for_update(self, host: str) -> Runtime | None:
        """The runtime, its row locked until the transaction ends (one start at a time)."""
        row = self._session.scalars(
            select(RuntimeRow)
            .where(RuntimeRow.tenant_id == self.tenant_id, RuntimeRow.host == host)
            .with_for_update()
        ).first()
        return None if row is None else _to_domain(row)

    def list(self) -> list[Runtime]:
        rows = self._session.scalars(
            select(RuntimeRow).where(RuntimeRow.tenant_id == self.tenant_id).order_by("host")
        )
        return [_to_domain(row) for row in rows]

    def add(self, runtime: Runtime) -> Runtime:
        tenant = self._owned(runtime.tenant_id)
        values = {name: getattr(runtime, name) for name in _FIELDS}
        values["status"] = runtime.status.value
        self._session.add(
            RuntimeRow(
                tenant_id=tenant,
                host=runtime.host,
                version=runtime.version,
                created_at=runtime.created_at,
                **values,
            )
        )
        self._session.flush()
        return runtime

    def save(self, runtime: Runtime) -> None:
        """Persist every field, version-checked (`ConcurrentModification` when it moved)."""
        expected = runtime.version
        values = {name: getattr(runtime, name) for name in _FIELDS}
        values["status"] = runtime.status.value
        result = self._session.execute(
            update(RuntimeRow)
            .where(
                RuntimeRow.tenant_id == self._owned(runtime.tenant_id),
                RuntimeRow.host == runtime.host,
                RuntimeRow.version == expected,
            )
            .values(version=RuntimeRow.version + 1, **values)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            raise ConcurrentModification(self.kind, runtime.host, "any", expected)
        runtime.version = expected + 1

    def remove(self, host: str) -> None:
        result = self._session.execute(
            delete(RuntimeRow)
            .where(RuntimeRow.tenant_id == self.tenant_id, RuntimeRow.host == host)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            raise NotFound(self.kind, host)


def tenants_with_runtimes(session: Session) -> list[str]:
    """Slugs of the active tenants with a runtime record (managed runtimes enabled)."""
    postgres = session.get_bind().dialect.name == "postgresql"
    sql = "SELECT * FROM tenants_with_runtimes()" if postgres else _TENANTS_WITH_RUNTIMES_SQL
    return list(session.scalars(text(sql)))
