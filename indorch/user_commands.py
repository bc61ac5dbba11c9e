"""`indorch user ...`: users of a tenant and their roles."""

from __future__ import annotations

import typer

from domain.caller import Caller
from domain.tenant import Role, User
from indorch.context import services
from indorch.output import print_record, print_rows

user_app = typer.Typer(
    help="Create, list, change the role of, suspend and reactivate a tenant's users.",
    no_args_is_help=True,
)
COLUMNS = ("id", "email", "name", "role", "active")
TENANT_OPTION = typer.Option(..., "--tenant", "-t", help="Tenant slug.")


@user_app.command("create")
def create(
    tenant: str = TENANT_OPTION,
    email: str = typer.Option(..., help="E-mail address (unique within the tenant)."),
    name: str = typer.Option("", help="Display name."),
    role: Role = typer.Option(
        Role.MEMBER, case_sensitive=False, help="ADMIN, LEAD, MEMBER, VIEWER."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Create a user in a tenant."""
    user = User(tenant_id=tenant, email=email, name=name, role=role)
    with services() as factory:
        factory.users().create(Caller.operator(), user)
    print_record(user.model_dump(mode="json"), as_json)


@user_app.command("list")
def list_users(
    tenant: str = TENANT_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List a tenant's users."""
    with services() as factory:
        users = factory.users().list(Caller.operator(), tenant)
    print_rows([u.model_dump(mode="json") for u in users], COLUMNS, as_json)


USER_ARGUMENT = typer.Argument(..., help="The user's e-mail (or USER-... id).")


@user_app.command("set-role")
def set_role(
    tenant: str = TENANT_OPTION,
    user: str = USER_ARGUMENT,
    role: Role = typer.Option(..., case_sensitive=False, help="ADMIN, LEAD, MEMBER, VIEWER."),
) -> None:
    """Change a user's role; its API keys act at most with the new role from now on."""
    with services() as factory:
        changed = factory.users().set_role(Caller.operator(), tenant, user, role)
    typer.echo(f"user {changed.email} is {changed.role.value}")


@user_app.command("suspend")
def suspend(tenant: str = TENANT_OPTION, user: str = USER_ARGUMENT) -> None:
    """Suspend a user: its API keys stop authenticating until it is reactivated."""
    with services() as factory:
        changed = factory.users().suspend(Caller.operator(), tenant, user)
    typer.echo(f"user {changed.email} suspended")


@user_app.command("reactivate")
def reactivate(tenant: str = TENANT_OPTION, user: str = USER_ARGUMENT) -> None:
    """Reactivate a suspended user (its keys authenticate again)."""
    with services() as factory:
        changed = factory.users().reactivate(Caller.operator(), tenant, user)
    typer.echo(f"user {changed.email} reactivated")
