"""Retention of our own event history: every tenant's expired session history, and its webhook
deliveries that ended before the same cutoff, removed in bounded batches (one short
transaction each), by the operator only.

Run daily by the `history_retention` schedule (orchestrator_defs/maintenance) and by hand with
`indorch retention run`; what expires and what stays is decided by the repository
(resources/database/repositories/history_retention.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from domain.caller import Caller
from resources.database import Database, tenant_scope, unit_of_work

DEFAULT_BATCH_SIZE = 5000


@dataclass(frozen=True)
class RetentionReport:
    tenants: int
    session_events: int
    checkpoints: int
    webhook_deliveries: int


class HistoryRetention:
    def __init__(self, database: Database) -> None:
        self._database = database

    def prune(
        self, caller: Caller, finished_before: datetime, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> RetentionReport:
        """Remove the expired history of sessions finished before `finished_before`, and the
        webhook deliveries that ended and were created before it (never a pending one)."""
        caller.require_operator("remove expired history")
        with unit_of_work(self._database) as uow:
            tenants = [tenant.slug for tenant in uow.tenants.list(include_inactive=True)]
        events = checkpoints = deliveries = 0
        for tenant in tenants:
            while True:
                with tenant_scope(tenant), unit_of_work(self._database) as uow:
                    pruned = uow.history_retention.prune_expired(finished_before, batch_size)
                events += pruned.session_events
                checkpoints += pruned.checkpoints
                if not (pruned.session_events or pruned.checkpoints):
                    break
            while True:
                with tenant_scope(tenant), unit_of_work(self._database) as uow:
                    ended = uow.webhooks.prune_ended(finished_before, batch_size)
                deliveries += ended
                if not ended:
                    break
        return RetentionReport(
            tenants=len(tenants),
            session_events=events,
            checkpoints=checkpoints,
            webhook_deliveries=deliveries,
        )
