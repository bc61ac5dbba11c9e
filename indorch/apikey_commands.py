"""`indorch apikey ...`: API keys of a tenant. A key is printed once, at creation, never again."""

from __future__ import annotations

import typer

from domain.tenant import Role
from indorch.context import tenant_work
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
    with tenant_work(tenant) as uow:
        user_id = uow.users.get_by_email(user_email).id if user_email else None
        key, plaintext = uow.api_keys.create(name=name, role=role, user_id=user_id)
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
    with tenant_work(tenant) as uow:
        keys = uow.api_keys.list()
    print_rows([k.model_dump(mode="json") for k in keys], COLUMNS, as_json)


@apikey_app.command("revoke")
def revoke(tenant: str = TENANT_OPTION, key_id: str = typer.Argument(...)) -> None:
    """Revoke a key: it stops authenticating at once."""
    with tenant_work(tenant) as uow:
        uow.api_keys.revoke(key_id)
    typer.echo(f"key {key_id} revoked")
