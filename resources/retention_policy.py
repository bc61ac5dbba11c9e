"""How long history is kept, as a Dagster resource the retention job reads (bound from the
environment once, when the definitions load: resources/settings.py)."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from resources import settings


class RetentionPolicy(dg.ConfigurableResource):
    history_days: int = Field(
        default=settings.DEFAULT_RETENTION_DAYS,
        ge=1,
        description="History (events, checkpoints) of sessions finished longer ago expires.",
    )
    run_days: int = Field(
        default=settings.DEFAULT_RETENTION_DAYS,
        ge=1,
        description="Finished Dagster runs (and their event logs) created longer ago are deleted.",
    )
    max_runs_per_tick: int = Field(default=1000, ge=1, description="Runs deleted per job run.")
    batch_size: int = Field(default=5000, ge=1, description="Events deleted per transaction.")


def configured_retention_policy() -> RetentionPolicy:
    return RetentionPolicy(
        history_days=settings.retention_days(settings.HISTORY_RETENTION_DAYS_VAR),
        run_days=settings.retention_days(settings.RUN_RETENTION_DAYS_VAR),
    )
