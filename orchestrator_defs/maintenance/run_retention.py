"""Retention of Dagster's runs: finished runs created before a cutoff are deleted through the
instance API (`DagsterInstance.delete_run`: the run and its event log).

A run that holds the latest materialization of an asset partition is kept, however old: deleting
it would make the partition look never materialized, to the UI and to declarative automation
(which would materialize a "newly missing" partition again). Runs still queued or in progress are
never candidates. Sensor and schedule ticks are purged by the daemon itself (`retention:` in
dagster.yaml).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import dagster as dg

FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]
PAGE_SIZE = 100  # tests pass a smaller one through `page_size`


@dataclass(frozen=True)
class PrunedRuns:
    deleted: int
    kept_for_materializations: int


def _holds_a_latest_materialization(instance: dg.DagsterInstance, run_id: str) -> bool:
    events = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
    ).records
    for record in events:
        event = record.event_log_entry.dagster_event
        if event is None or event.asset_key is None:
            continue
        partition = event.partition
        latest = instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=event.asset_key,
                asset_partitions=[partition] if partition is not None else None,
            ),
            limit=1,
        ).records
        if latest and latest[0].run_id == run_id:
            return True
    return False


def prune_finished_runs(
    instance: dg.DagsterInstance,
    created_before: datetime,
    limit: int = 1000,
    page_size: int = PAGE_SIZE,
) -> PrunedRuns:
    """Delete at most `limit` finished runs created before `created_before`, oldest first."""
    filters = dg.RunsFilter(statuses=FINISHED, created_before=created_before)
    deleted = kept = 0
    cursor: str | None = None
    while deleted < limit:
        page = instance.get_run_records(
            filters=filters, limit=page_size, cursor=cursor, ascending=True
        )
        if not page:
            break
        for record in page:
            run_id = record.dagster_run.run_id
            if _holds_a_latest_materialization(instance, run_id):
                kept += 1
                cursor = (
                    run_id  # the next page starts after the last run kept: deleted ones are gone
                )
                continue
            instance.delete_run(run_id)
            deleted += 1
            if deleted >= limit:
                break
    return PrunedRuns(deleted=deleted, kept_for_materializations=kept)
