"""`indorch tenant ...`: the tenants of the platform."""

from __future__ import annotations

import typer

from domain.caller import Caller
from domain.tenant import Tenant
from indorch.context import services
from indorch.output import print_record, print_rows, print_warning

tenant_app = typer.Typer(help="Create and list tenants.", no_args_is_help=True)
COLUMNS = ("slug", "name", "active", "max_concurrent_sessions", "monthly_token_budget")


def tenant_row(tenant: Tenant) -> dict[str, object]:
    return tenant.model_dump(mode="json")


@tenant_app.command("create")
def create(
    slug: str = typer.Argument(..., help="Identity of the tenant: lowercase letters, digits, -."),
    name: str = typer.Option(None, help="Display name (defaults to the slug)."),
    max_concurrent_sessions: int = typer.Option(10, help="Sessions active at once."),
    monthly_token_budget: int = typer.Option(1_000_000, help="Tokens per calendar month."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Create a tenant (refused if the slug is invalid or taken)."""
    tenant = Tenant(
        slug=slug,
        name=name or slug,
        max_concurrent_sessions=max_concurrent_sessions,
        monthly_token_budget=monthly_token_budget,
    )
    with services() as factory:
        factory.tenants().create(Caller.operator(), tenant)
    print_record(tenant_row(tenant), as_json)


@tenant_app.command("list")
def list_tenants(
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    active_only: bool = typer.Option(False, "--active", help="Only active tenants."),
) -> None:
    """List tenants."""
    with services() as factory:
        tenants = factory.tenants().list(Caller.operator(), include_inactive=not active_only)
    print_rows([tenant_row(t) for t in tenants], COLUMNS, as_json)


@tenant_app.command("show")
def show(
    slug: str,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show one tenant."""
    with services() as factory:
        tenant = factory.tenants().get(Caller.operator(), slug)
    print_record(tenant_row(tenant), as_json)


@tenant_app.command("deactivate")
def deactivate(slug: str) -> None:
    """Stop a tenant from starting work; its data and history stay."""
    with services() as factory:
        factory.tenants().deactivate(Caller.operator(), slug)
    typer.echo(f"tenant {slug} deactivated")


@tenant_app.command("delete")
def delete(
    slug: str,
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
) -> None:
    """Delete a tenant (soft: hidden from listings and partitions, its records kept) and remove
    its worktrees from the agent servers (one that cannot be reached is named, to clean by hand);
    its managed runtime on this host is stopped and its runtime directories removed."""
    if not yes:
        typer.confirm(f"Delete tenant {slug}?", abort=True)
    with services() as factory:
        deletion = factory.tenants().delete(Caller.operator(), slug)
    typer.echo(f"tenant {slug} deleted")
    if deletion.runtime_stopped:
        typer.echo("stopped its managed runtime")
    for path in deletion.runtime_removed:
        typer.echo(f"removed its runtime directory {path} (HOME, workspaces)")
    for removal in deletion.worktrees:
        if removal.error is None:
            typer.echo(f"removed its worktree {removal.directory} on {removal.server_url}")
        else:
            print_warning(
                f"its worktree {removal.directory} is left on {removal.server_url} "
                f"(remove it there by hand): {removal.error}"
            )
