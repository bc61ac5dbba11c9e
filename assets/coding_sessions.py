"""The `coding_sessions` asset: each finished session materializes its tenant's partition.

Materialized by the `session_wave` job as sessions end (one event per session, with its status,
agent, attempts, tokens, cost and files changed); the fine-tuning lineage starts here.
"""

import dagster as dg

from resources.dagster_partitions import tenant_partitions

CODING_SESSIONS = dg.AssetSpec(
    key="coding_sessions",
    partitions_def=tenant_partitions,
    description="Coding sessions of a tenant, one materialization per finished session.",
    group_name="sessions",
    kinds={"opencode"},
)
