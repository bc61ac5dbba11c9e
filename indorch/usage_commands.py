"""`indorch usage ...`: a tenant's metered usage, for billing."""

from __future__ import annotations

from pathlib import Path

import typer

from domain.caller import Caller
from indorch.context import services

usage_app = typer.Typer(help="A tenant's metered usage.", no_args_is_help=True)


@usage_app.command("export")
def export(
    tenant: str = typer.Option(..., "--tenant", "-t", help="Tenant slug."),
    month: str = typer.Option(..., help="The month, as YYYY-MM."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write the CSV here (default: standard output)."
    ),
) -> None:
    """Write the month's usage as CSV, one line per day (zeros where nothing was used)."""
    with services() as factory:
        text = factory.usage().export_csv(Caller.operator(), tenant, month)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text)
        typer.echo(f"wrote {len(text.splitlines()) - 1} days to {output}", err=True)
