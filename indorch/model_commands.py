"""`indorch model ...`: the model a tenant's sessions are prompted with (its promotions)."""

from __future__ import annotations

import typer

from domain.caller import Caller
from indorch.context import services
from indorch.output import print_record, print_rows

model_app = typer.Typer(help="A tenant's promoted model.", no_args_is_help=True)
COLUMNS = ("id", "model", "evaluation_id", "promoted_at", "retired_at")
TENANT_OPTION = typer.Option(..., "--tenant", "-t", help="Tenant slug.")
JSON_OPTION = typer.Option(False, "--json", help="Print JSON.")


@model_app.command("show")
def show(tenant: str = TENANT_OPTION, as_json: bool = JSON_OPTION) -> None:
    """The current promotion (none: the agents' own model)."""
    with services() as factory:
        current = factory.promotions().current(Caller.operator(), tenant)
    if current is None:
        typer.echo(f"{tenant}: no promoted model; sessions use their agents' model")
        return
    print_record(current.model_dump(mode="json"), as_json)


@model_app.command("history")
def history(tenant: str = TENANT_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Every promotion, newest first."""
    with services() as factory:
        promotions = factory.promotions().history(Caller.operator(), tenant)
    print_rows([p.model_dump(mode="json") for p in promotions], COLUMNS, as_json)


@model_app.command("rollback")
def rollback(tenant: str = TENANT_OPTION) -> None:
    """Back to the previous model: the current promotion is retired."""
    with services() as factory:
        current = factory.promotions().rollback(Caller.operator(), tenant)
    now = current.model if current else "the agents' own model"
    typer.echo(f"{tenant}: rolled back; new sessions use {now}")
