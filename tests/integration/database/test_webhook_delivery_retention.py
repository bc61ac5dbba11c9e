"""Retention of webhook deliveries (`services/history_retention.py`), on SQLite and PostgreSQL.

A delivery that ended (DELIVERED, or FAILED out of attempts) and was created longer ago than
the history retention goes with the daily retention; a PENDING one stays however old (it is
still to be sent), as does every recent one.
"""

from __future__ import annotations

from datetime import timedelta

from domain.caller import Caller
from domain.clock import utcnow
from domain.history_retention import expiry_cutoff
from resources.database import Database
from resources.database.unit_of_work import UnitOfWork
from services.history_retention import HistoryRetention
from tests.integration.database.support import (
    delivery_that,
    new_tenant,
    run_as,
    webhook_endpoint,
)

NOW = utcnow()
LONG_AGO = NOW - timedelta(days=120)
RECENTLY = NOW - timedelta(days=2)
RETENTION_DAYS = 90


def _world(database: Database) -> dict[str, str]:
    def write(uow: UnitOfWork) -> dict[str, str]:
        hook = webhook_endpoint(uow)
        return {
            "endpoint": hook,
            "old_delivered": delivery_that(uow, hook, LONG_AGO, 200),
            "old_failed": delivery_that(uow, hook, LONG_AGO, 500),
            "old_pending": delivery_that(uow, hook, LONG_AGO, None),
            "recent_delivered": delivery_that(uow, hook, RECENTLY, 200),
            "recent_failed": delivery_that(uow, hook, RECENTLY, 500),
        }

    tenant, other = new_tenant(database, "hooks"), new_tenant(database, "others")
    ids = run_as(database, tenant, write)
    ids["other_old_delivered"] = run_as(
        database, other, lambda uow: delivery_that(uow, webhook_endpoint(uow), LONG_AGO, 200)
    )
    ids["tenant"], ids["other"] = tenant, other
    return ids


def _kept(database: Database, tenant: str) -> dict[str, str]:
    def read(uow: UnitOfWork) -> dict[str, str]:
        return {
            delivery.id: delivery.status.value
            for endpoint in uow.webhooks.list()
            for delivery in uow.webhooks.deliveries(endpoint.id, 100)
        }

    return run_as(database, tenant, read)


def test_ended_deliveries_past_the_retention_go_and_pending_or_recent_ones_stay(
    database: Database,
) -> None:
    world = _world(database)
    assert len(_kept(database, world["tenant"])) == 5

    report = HistoryRetention(database).prune(Caller.operator(), expiry_cutoff(RETENTION_DAYS, NOW))

    assert _kept(database, world["tenant"]) == {
        world["old_pending"]: "PENDING",  # still to be sent, however old
        world["recent_delivered"]: "DELIVERED",
        world["recent_failed"]: "FAILED",
    }
    assert _kept(database, world["other"]) == {}  # every tenant's, by the operator's run
    assert report.webhook_deliveries == 3


def test_deliveries_are_pruned_in_batches_until_none_is_left(database: Database) -> None:
    world = _world(database)
    retention = HistoryRetention(database)
    first = retention.prune(Caller.operator(), expiry_cutoff(RETENTION_DAYS, NOW), batch_size=1)
    again = retention.prune(Caller.operator(), expiry_cutoff(RETENTION_DAYS, NOW))
    assert (first.webhook_deliveries, again.webhook_deliveries) == (3, 0)
    assert set(_kept(database, world["tenant"])) == {
        world["old_pending"],
        world["recent_delivered"],
        world["recent_failed"],
    }
