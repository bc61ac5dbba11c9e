"""What the Dagster instance knows of a tenant's materializations, for the assets downstream."""

from __future__ import annotations

import dagster as dg

from domain.errors import NotFound


def latest_metadata(instance: dg.DagsterInstance, asset: str, tenant: str) -> dict[str, object]:
    """The metadata values of the asset's latest materialization for the tenant's partition;
    `NotFound` when it was never materialized."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[tenant]), limit=1
    ).records
    if not records or records[0].asset_materialization is None:
        raise NotFound(f"{asset} materialization", tenant)
    metadata = records[0].asset_materialization.metadata
    return {key: value.value for key, value in metadata.items()}


def latest_dataset_version(instance: dg.DagsterInstance, tenant: str) -> str:
    return str(latest_metadata(instance, "training_dataset", tenant)["dataset_version"])
