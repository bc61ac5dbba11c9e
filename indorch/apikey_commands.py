"""`indorch apikey ...`: API keys of a tenant. A key is printed once, at creation, never again."""

from __future__ import annotations

import typer

from domain.caller import Caller
from domain.tenant import Role
from indorch.context import services
from indorch.output import console, print_record, print_rows

apikey_app = typer.Typer(help="Create, list and revoke a tenant's API keys.", no_args_is_help=True)
COLUMNS = ("id", "name", "prefix", "role", "user_id", "created_at", "revoked_at")
TENANT_OPTION = typer.Option(..., "--tenant", "-t", help="Tenant slug.")


@apikey_app.command("create")
def create(
    tenant: str = TENANT_OPTION,
    name: str = typer.Option(..., help="What the key is for."),
    role: Role = typer.Option(Role.MEMBER, case_sensitive=False, help="Role the key acts with."),
    user_email: str = typer.Option(None, "--user", help="Owner's e-mail (a user of the tenant)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Create a key and print it once: store it now, it cannot be shown again."""
    with services() as factory:
        key, plaintext = factory.api_keys().create(
            Caller.operator(), tenant, name, role=role, user_email=user_email
        )
    record = {**key.model_dump(mode="json"), "key": plaintext}
    if as_json:
        print_record(record, as_json=True)
        return
    print_record(key.model_dump(mode="json"), as_json=False)
    console.print("[bold]key[/bold] (shown once, store it now):")
    typer.echo(plaintext)


@apikey_app.command("list")
def list_keys(
    tenant: str = TENANT_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List a tenant's keys (prefixes only; keys themselves are never stored)."""
    with services() as factory:
        keys = factory.api_keys().list(Caller.operator(), tenant)
    print_rows([k.model_dump(mode="json") for k in keys], COLUMNS, as_json)


@apikey_app.command("revoke")
def revoke(tenant: str = TENANT_OPTION, key_id: str = typer.Argument(...)) -> None:
    """Revoke a key: it stops authenticating at once."""
    with services() as factory:
        factory.api_keys().revoke(Caller.operator(), tenant, key_id)
    typer.echo(f"key {key_id} revoked")
