"""Which agent servers the current tenant holds: one runtime serves one tenant.

A claim is taken when a tenant's agent is registered on a server (or activated again) and
released when its last agent there is removed. The primary key on the server key decides between
tenants, even two registering at once and each blind to the other's rows under row-level
security: the second insert fails on the key, and the registration is refused with
`ServerInUse`, which names neither the other tenant nor its agent.
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from domain.clock import utcnow
from domain.errors import ServerInUse
from resources.database.repositories.base import TenantScopedRepository
from resources.database.schema import AgentServerClaimRow


class AgentServerClaimRepository(TenantScopedRepository):
    kind = "agent server claim"

    def holds(self, server_key: str) -> bool:
        """Whether the current tenant holds that server."""
        found = self._session.scalar(
            select(AgentServerClaimRow.server_key).where(
                AgentServerClaimRow.tenant_id == self.tenant_id,
                AgentServerClaimRow.server_key == server_key,
            )
        )
        return found is not None

    def claim(self, server_key: str) -> None:
        """Hold the server for the current tenant (already held: nothing to do); `ServerInUse`
        when another tenant holds it. Under a savepoint: the transaction stays usable."""
        if self.holds(server_key):
            return
        tenant = self.tenant_id
        try:
            with self._session.begin_nested():
                self._session.add(
                    AgentServerClaimRow(
                        server_key=server_key, tenant_id=tenant, created_at=utcnow()
                    )
                )
                self._session.flush()
        except IntegrityError:
            if not self.holds(server_key):  # not a concurrent claim of this same tenant
                raise ServerInUse() from None

    def release(self, server_key: str) -> None:
        self._session.execute(
            delete(AgentServerClaimRow)
            .where(
                AgentServerClaimRow.tenant_id == self.tenant_id,
                AgentServerClaimRow.server_key == server_key,
            )
            .execution_options(synchronize_session=False)
        )

    def release_all(self) -> None:
        """Every server the tenant holds (the tenant is deleted)."""
        self._session.execute(
            delete(AgentServerClaimRow)
            .where(AgentServerClaimRow.tenant_id == self.tenant_id)
            .execution_options(synchronize_session=False)
        )

    def list(self) -> list[str]:
        query = (
            select(AgentServerClaimRow.server_key)
            .where(AgentServerClaimRow.tenant_id == self.tenant_id)
            .order_by(AgentServerClaimRow.server_key)
        )
        return list(self._session.scalars(query))
