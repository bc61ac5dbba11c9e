"""Webhook deliveries: every few seconds, the due deliveries of the tenants that have some.

The deliveries are an outbox in the database (written with the change they tell of), so this
sensor loses nothing when it or the daemon stops: what it did not send stays due. A tick visits
only the tenants with a delivery due (`TenantWorkRepository.with_due_webhooks`, one indexed
query across tenants), so idle tenants cost it nothing. Why a sensor rather than a task in the
API process: see `services.webhooks`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import dagster as dg

from domain.caller import Caller
from domain.clock import utcnow
from resources.database import Database, tenant_scope, unit_of_work
from resources.database_resource import DatabaseResource
from services.factory import ServiceFactory
from services.webhooks import Webhooks

TICK_INTERVAL_SECONDS = 5
PER_TENANT_PER_TICK = 50
logger = logging.getLogger(__name__)


@dataclass
class WebhookTick:
    """What a tick did: the tenants it visited (those with a delivery due) and, per tenant, how
    many of its attempts delivered and how many will be tried again."""

    visited: list[str]
    summary: list[str] = field(default_factory=list)


def webhook_tick(
    webhooks: Webhooks, database: Database, log: logging.Logger = logger
) -> WebhookTick:
    with unit_of_work(database) as uow:
        tick = WebhookTick(uow.tenant_work.with_due_webhooks(utcnow()))
    for tenant in tick.visited:
        try:
            with tenant_scope(tenant):
                reports = webhooks.deliver_due(Caller.operator(), tenant, PER_TENANT_PER_TICK)
        except Exception as error:  # one tenant's trouble never holds up the others'
            log.warning("tenant %s: webhook deliveries failed: %r", tenant, error)
            continue
        if reports:
            delivered = sum(1 for report in reports if report.status == "DELIVERED")
            tick.summary.append(f"{tenant}: {delivered}/{len(reports)} delivered")
            if delivered < len(reports):
                log.info("tenant %s: %d to try again", tenant, len(reports) - delivered)
    return tick


@dg.sensor(
    minimum_interval_seconds=TICK_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Sends the tenants' due webhook deliveries (signed, retried with backoff).",
)
def webhook_delivery_sensor(
    context: dg.SensorEvaluationContext, database: DatabaseResource
) -> dg.SkipReason:
    db = database.get_database()
    tick = webhook_tick(ServiceFactory(db).webhooks(), db, context.log)
    return dg.SkipReason("; ".join(tick.summary) or "no webhook due")
