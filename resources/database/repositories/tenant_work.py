"""Which tenants have work for the sensors: the one read across tenants, answering only slugs.

A sensor tick visits only these tenants, so its cost grows with the work, not with the tenants
(1,000 idle tenants once cost two transactions each per tick). The answer over-approximates:
a tenant found here may turn out to have nothing to do (its quota full, prerequisites pending,
a decomposed request's coordinating parent, which is PENDING or RUNNING with no lease); a tenant
with work is never missed.

To dispatch: a PENDING session due (no backoff, or its backoff over), or an unsupervised one
(QUEUED, RUNNING or DEGRADED with its lease missing or run out). To retry: a FAILED, TIMEOUT or
ORPHANED session with a retry left, or a decomposed request to settle (a PENDING subtask, or a
PENDING/RUNNING session with children). To train: a fine-tuning job in flight. To deliver webhooks:
a PENDING delivery whose next attempt is due. To probe agents: an ACTIVE agent on an OpenCode
server. Only active, undeleted tenants.

On PostgreSQL the application role sees no other tenant's rows: the queries run inside SECURITY
DEFINER functions of migration 0006, owned by a role that reads a few columns of sessions and
tenants and nothing else. SQLite has no such wall and runs the same SQL here. Both are indexed
(ix_sessions_pending_due, ix_sessions_status_lease, ix_sessions_retryable, ix_sessions_parent_id);
a tenant is looked up by its key per tenant found (a scalar subquery, never joined: the planner
would otherwise scan every tenant when its statistics are stale), so the work decides the cost.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session

from resources.database.column_types import UtcDateTime

# The bodies of migration 0006's functions; a change here is a new migration there.
_DISPATCH_SQL = """
    SELECT w.tenant_id FROM (
        SELECT s.tenant_id FROM sessions s
        WHERE s.status = 'PENDING' AND (s.next_attempt_at IS NULL OR s.next_attempt_at <= :as_of)
        UNION
        SELECT s.tenant_id FROM sessions s
        WHERE s.status IN ('QUEUED', 'RUNNING', 'DEGRADED')
          AND (s.lease_expires_at IS NULL OR s.lease_expires_at <= :as_of)
    ) w
    WHERE (SELECT t.active AND t.deleted_at IS NULL FROM tenants t WHERE t.slug = w.tenant_id)
    ORDER BY w.tenant_id
"""
_RETRY_SQL = """
    SELECT w.tenant_id FROM (
        SELECT s.tenant_id FROM sessions s
        WHERE s.status IN ('FAILED', 'TIMEOUT', 'ORPHANED') AND s.retry_count < s.max_retries
    ) w
    WHERE (SELECT t.active AND t.deleted_at IS NULL FROM tenants t WHERE t.slug = w.tenant_id)
    ORDER BY w.tenant_id
"""
_SETTLE_SQL = """
    SELECT w.tenant_id FROM (
        SELECT s.tenant_id FROM sessions s WHERE s.status = 'PENDING' AND s.parent_id IS NOT NULL
        UNION
        SELECT s.tenant_id FROM sessions s
        WHERE s.status IN ('PENDING', 'RUNNING') AND EXISTS (
            SELECT 1 FROM sessions c WHERE c.parent_id = s.id
        )
    ) w
    WHERE (SELECT t.active AND t.deleted_at IS NULL FROM tenants t WHERE t.slug = w.tenant_id)
    ORDER BY w.tenant_id
"""
_TRAINING_SQL = """
    SELECT DISTINCT j.tenant_id FROM fine_tuning_jobs j
    WHERE j.status IN ('QUEUED', 'RUNNING')
      AND (SELECT t.active AND t.deleted_at IS NULL FROM tenants t WHERE t.slug = j.tenant_id)
    ORDER BY j.tenant_id
"""  # migration 0009's function body
_WEBHOOKS_SQL = """
    SELECT DISTINCT d.tenant_id FROM webhook_deliveries d
    WHERE d.status = 'PENDING' AND d.next_attempt_at <= :as_of
      AND (SELECT t.active AND t.deleted_at IS NULL FROM tenants t WHERE t.slug = d.tenant_id)
    ORDER BY d.tenant_id
"""  # migration 0018's function body
_PROBED_AGENTS_SQL = """
    SELECT DISTINCT a.tenant_id FROM agents a
    WHERE a.status = 'ACTIVE' AND a.kind = 'opencode'
      AND (SELECT t.active AND t.deleted_at IS NULL FROM tenants t WHERE t.slug = a.tenant_id)
    ORDER BY a.tenant_id
"""  # migration 0019's function body
_AS_OF = bindparam("as_of", type_=UtcDateTime())


class TenantWorkRepository:
    """Not tenant-scoped: it is what tells the sensors which tenant scopes to enter."""

    def __init__(self, session: Session) -> None:
        self._session = session

    @property
    def _is_postgres(self) -> bool:
        return self._session.get_bind().dialect.name == "postgresql"

    def to_dispatch(self, now: datetime) -> list[str]:
        """Slugs of the tenants with a due PENDING or an unsupervised session, in order."""
        sql = "SELECT * FROM tenants_to_dispatch(:as_of)" if self._is_postgres else _DISPATCH_SQL
        return list(self._session.scalars(text(sql).bindparams(_AS_OF), {"as_of": now}))

    def to_retry(self) -> list[str]:
        """Slugs of the tenants with a failed session that has a retry left, in order."""
        sql = "SELECT * FROM tenants_to_retry()" if self._is_postgres else _RETRY_SQL
        return list(self._session.scalars(text(sql)))

    def to_settle(self) -> list[str]:
        """Slugs of the tenants with a decomposed request in flight, in order."""
        sql = "SELECT * FROM tenants_to_settle()" if self._is_postgres else _SETTLE_SQL
        return list(self._session.scalars(text(sql)))

    def with_training(self) -> list[str]:
        """Slugs of the tenants with a fine-tuning job to submit or follow, in order."""
        sql = "SELECT * FROM tenants_with_training()" if self._is_postgres else _TRAINING_SQL
        return list(self._session.scalars(text(sql)))

    def with_due_webhooks(self, now: datetime) -> list[str]:
        """Slugs of the tenants with a webhook delivery due, in order."""
        sql = (
            "SELECT * FROM tenants_with_due_webhooks(:as_of)"
            if self._is_postgres
            else _WEBHOOKS_SQL
        )
        return list(self._session.scalars(text(sql).bindparams(_AS_OF), {"as_of": now}))

    def with_probed_agents(self) -> list[str]:
        """Slugs of the tenants with an ACTIVE agent on an OpenCode server, in order."""
        sql = (
            "SELECT * FROM tenants_with_probed_agents()"
            if self._is_postgres
            else _PROBED_AGENTS_SQL
        )
        return list(self._session.scalars(text(sql)))
