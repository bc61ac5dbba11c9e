"""Webhook deliveries: every few seconds, each active tenant's due deliveries are attempted.

The deliveries are an outbox in the database (written with the change they tell of), so this
sensor loses nothing when it or the daemon stops: what it did not send stays due. Why a sensor
rather than a task in the API process: see `services.webhooks`.
"""

from __future__ import annotations

import dagster as dg

from domain.caller import Caller
from resources.database import tenant_scope
from resources.database_resource import DatabaseResource
from services.factory import ServiceFactory

TICK_INTERVAL_SECONDS = 5
PER_TENANT_PER_TICK = 50


@dg.sensor(
    minimum_interval_seconds=TICK_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Sends the tenants' due webhook deliveries (signed, retried with backoff).",
)
def webhook_delivery_sensor(
    context: dg.SensorEvaluationContext, database: DatabaseResource
) -> dg.SkipReason:
    webhooks = ServiceFactory(database.get_database()).webhooks()
    with database.unit_of_work() as uow:
        tenants = uow.tenants.active_slugs()
    summary: list[str] = []
    for tenant in tenants:
        try:
            with tenant_scope(tenant):
                reports = webhooks.deliver_due(Caller.operator(), tenant, PER_TENANT_PER_TICK)
        except Exception as error:  # one tenant's trouble never holds up the others'
            context.log.warning(f"tenant {tenant}: webhook deliveries failed: {error!r}")
            continue
        if reports:
            delivered = sum(1 for report in reports if report.status == "DELIVERED")
            summary.append(f"{tenant}: {delivered}/{len(reports)} delivered")
            if delivered < len(reports):
                context.log.info(f"tenant {tenant}: {len(reports) - delivered} to try again")
    return dg.SkipReason("; ".join(summary) or "no webhook due")
