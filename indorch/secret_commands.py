"""`indorch secret ...`: a tenant's secrets (repository credentials). The value is read from
stdin or a hidden prompt, never from the command line (argv is visible to every user of the
host in `ps`), and is never printed: `list` shows names and times only."""

from __future__ import annotations

import sys

import typer

from domain.caller import Caller
from indorch.context import services
from indorch.output import print_rows

secret_app = typer.Typer(
    help="Set, list and delete a tenant's secrets (values are never shown).",
    no_args_is_help=True,
)
COLUMNS = ("name", "created_at", "updated_at")
TENANT_OPTION = typer.Option(..., "--tenant", "-t", help="Tenant slug.")
NAME_ARGUMENT = typer.Argument(..., help="The secret's name (letters, digits, _ . -).")


def _read_value() -> str:
    """The value from stdin when it is piped (one trailing newline dropped), else a prompt."""
    if sys.stdin.isatty():
        return typer.prompt("value", hide_input=True, confirmation_prompt=True)
    value = sys.stdin.read()
    return value[:-1] if value.endswith("\n") else value


@secret_app.command("set")
def set_secret(tenant: str = TENANT_OPTION, name: str = NAME_ARGUMENT) -> None:
    """Store a secret, sealed, read from stdin (or a hidden prompt); replaces an earlier one."""
    value = _read_value()
    with services() as factory:
        factory.secrets().set(Caller.operator(), tenant, name, value)
    typer.echo(f"secret {name} set for tenant {tenant}")


@secret_app.command("list")
def list_secrets(
    tenant: str = TENANT_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """The tenant's secrets: names and times, never values."""
    with services() as factory:
        secrets = factory.secrets().list(Caller.operator(), tenant)
    print_rows([s.model_dump(mode="json") for s in secrets], COLUMNS, as_json)


@secret_app.command("delete")
def delete_secret(tenant: str = TENANT_OPTION, name: str = NAME_ARGUMENT) -> None:
    """Delete a secret."""
    with services() as factory:
        factory.secrets().delete(Caller.operator(), tenant, name)
    typer.echo(f"secret {name} deleted from tenant {tenant}")
