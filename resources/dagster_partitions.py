"""The `tenants` dynamic partition that every tenant-partitioned job and asset shares, and the one
place that adds its keys.

Here, below the code location, because the assets and the sensors both need it and may import
only the layers under them (the contract in `pyproject.toml`). A partitioned run or a
materialization needs its key to exist first: the sensors ask for the missing keys in the same
`SensorResult` as their runs (Dagster adds them before it creates the runs), and a run launched
by hand adds its tenant's key itself.
"""

from __future__ import annotations

from collections.abc import Iterable

import dagster as dg

tenant_partitions = dg.DynamicPartitionsDefinition(name="tenants")


def missing_tenant_partitions(
    instance: dg.DagsterInstance, tenants: Iterable[str]
) -> list[dg.AddDynamicPartitionsRequest]:
    """A request adding the tenants that have no partition yet (none when all have one)."""
    existing = set(instance.get_dynamic_partitions(tenant_partitions.name))
    missing = sorted(set(tenants) - existing)
    return [tenant_partitions.build_add_request(missing)] if missing else []


def ensure_tenant_partition(instance: dg.DagsterInstance, tenant: str) -> None:
    """Add the tenant's partition now (a run launched by hand, outside any sensor)."""
    if not instance.has_dynamic_partition(tenant_partitions.name, tenant):
        instance.add_dynamic_partitions(tenant_partitions.name, [tenant])
