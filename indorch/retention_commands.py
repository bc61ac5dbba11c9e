"""`indorch retention run`: remove the expired session history now (the `retention` schedule does
it daily; Dagster's own runs are pruned by that job, on the instance)."""

from __future__ import annotations

import typer

from domain.caller import Caller
from domain.clock import utcnow
from domain.history_retention import expiry_cutoff
from indorch.context import services
from indorch.output import print_record
from resources import settings

retention_app = typer.Typer(help="Retention of the event history.", no_args_is_help=True)


@retention_app.command("run")
def run(
    days: int | None = typer.Option(
        None,
        "--days",
        help="Keep this many days (default: INDORCH_HISTORY_RETENTION_DAYS, else 90).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the counts as JSON."),
) -> None:
    """Remove the history of sessions finished more than DAYS ago that nothing reads any more."""
    kept_days = (
        days if days is not None else settings.retention_days(settings.HISTORY_RETENTION_DAYS_VAR)
    )
    cutoff = expiry_cutoff(kept_days, utcnow())
    with services() as factory:
        report = factory.history_retention().prune(Caller.operator(), cutoff)
    counts = {
        "finished_before": cutoff.isoformat(),
        "tenants": report.tenants,
        "session_events": report.session_events,
        "checkpoints": report.checkpoints,
        "webhook_deliveries": report.webhook_deliveries,
    }
    print_record(counts, as_json)
