"""Keeps the `tenants` dynamic partition in step with the tenant registry.

The rules, per tenant slug:
- active and not deleted, no partition yet → added;
- deleted (soft-deleted by `TenantRepository.delete`) or gone from the table → its partition is
  removed;
- deactivated (``active=False``, not deleted) → keeps its partition, so its history stays visible
  in the UI, but gets none if it has none: an inactive tenant starts no new work.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from resources.dagster_partitions import tenant_partitions
from resources.database_resource import DatabaseResource

TICK_INTERVAL_SECONDS = 30


@dataclass(frozen=True)
class PartitionChanges:
    add: list[str]
    remove: list[str]


def partition_changes(
    active: set[str], registered: set[str], partitioned: set[str]
) -> PartitionChanges:
    """`registered` is every non-deleted tenant (active or not); `active` is a subset of it."""
    return PartitionChanges(
        add=sorted(active - partitioned), remove=sorted(partitioned - registered)
    )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


@dg.sensor(
    minimum_interval_seconds=TICK_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Adds a `tenants` partition per active tenant; removes those of deleted tenants.",
)
def tenant_partition_sensor(
    context: dg.SensorEvaluationContext, database: DatabaseResource
) -> dg.SensorResult | dg.SkipReason:
    with database.unit_of_work() as uow:
        active = set(uow.tenants.active_slugs())
        registered = {tenant.slug for tenant in uow.tenants.list(include_inactive=True)}
    partitioned = set(context.instance.get_dynamic_partitions(tenant_partitions.name))
    changes = partition_changes(active, registered, partitioned)

    if not (changes.add or changes.remove):
        inactive = len(registered) - len(active)
        return dg.SkipReason(
            f"{_count(len(registered), 'tenant')} ({len(active)} active, {inactive} inactive), "
            "partitions up to date"
        )

    requests: list[dg.AddDynamicPartitionsRequest | dg.DeleteDynamicPartitionsRequest] = []
    summary: list[str] = []
    if changes.add:
        summary.append(
            f"Adding {_count(len(changes.add), 'tenant partition')}: {', '.join(changes.add)}"
        )
        requests.append(tenant_partitions.build_add_request(changes.add))
    if changes.remove:
        summary.append(
            f"Removing {_count(len(changes.remove), 'partition')} of deleted tenants: "
            f"{', '.join(changes.remove)}"
        )
        requests.append(tenant_partitions.build_delete_request(changes.remove))
    message = "; ".join(summary)
    context.log.info(message)
    # A tick without runs shows as skipped; the reason says what it changed (instead of
    # Dagster's "Sensor function returned an empty result").
    return dg.SensorResult(dynamic_partitions_requests=requests, skip_reason=message)
