"""`indorch health`: the real dependencies, checked now (database, Redis)."""

from __future__ import annotations

import typer

from indorch.output import print_record


def health(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """ok, degraded (Redis configured but down: the database carries on alone) or down.

    Exit code 0 when ok or degraded, 1 when down.
    """
    from resources.database import Database
    from resources.health import OverallStatus, check_health
    from resources.settings import database_url, redis_url

    database = Database(database_url())
    try:
        report = check_health(database, redis_url())
    finally:
        database.dispose()
    print_record(report.model_dump(mode="json"), as_json)
    if report.status is OverallStatus.DOWN:
        raise typer.Exit(1)
