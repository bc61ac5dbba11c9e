"""`indorch repo ...`: a tenant's code repositories, which sessions check out and push back to.

Every write goes through `services.code_repositories.CodeRepositories`, as the operator. The
credentials are the NAME of a tenant secret (never a password on the command line, never in the
URL); `--setup-script-file` reads the script run in each session's worktree before its prompt.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from domain.caller import Caller
from domain.code_repository import CodeRepository
from domain.errors import InvalidInput
from indorch.context import service_factory, tenant_database
from indorch.output import print_record, print_rows

repo_app = typer.Typer(
    help="Register, list, show and remove a tenant's code repositories.", no_args_is_help=True
)
TENANT_OPTION = typer.Option(..., "--tenant", "-t", help="Tenant slug.")
NAME_ARGUMENT = typer.Argument(..., help="The repository's name.")
JSON_OPTION = typer.Option(False, "--json", help="Print JSON.")
COLUMNS = ("name", "url", "default ref", "credentials", "setup script")


def _record(repository: CodeRepository) -> dict[str, Any]:
    return repository.model_dump(mode="json")


def _row(repository: CodeRepository) -> dict[str, Any]:
    script = repository.setup_script
    return {
        "name": repository.name,
        "url": repository.url,
        "default ref": repository.default_ref,
        "credentials": repository.credentials_secret,
        "setup script": f"{len(script.splitlines())} lines" if script else None,
    }


@repo_app.command("add")
def add(
    name: str = NAME_ARGUMENT,
    tenant: str = TENANT_OPTION,
    url: str = typer.Option(..., "--url", help="git URL: file://, http(s):// or ssh://."),
    default_ref: str = typer.Option("main", "--default-ref", help="Ref sessions start from."),
    credentials: str = typer.Option(
        None, "--credentials", help="Name of the tenant secret holding user:password (or token)."
    ),
    setup_script_file: str = typer.Option(
        None, "--setup-script-file", help="A script run in each session's worktree first."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Register a repository of the tenant's."""
    script = None
    if setup_script_file is not None:
        try:
            script = Path(setup_script_file).read_text()
        except OSError as error:
            raise InvalidInput("setup-script-file", error.strerror or str(error)) from None
    repository = CodeRepository(
        tenant_id=tenant,
        name=name,
        url=url,
        default_ref=default_ref,
        credentials_secret=credentials,
        setup_script=script,
    )
    with tenant_database(tenant) as database:
        added = service_factory(database).repositories().register(Caller.operator(), repository)
    print_record(_record(added) if as_json else _row(added), as_json)


@repo_app.command("list")
def list_repositories(tenant: str = TENANT_OPTION, as_json: bool = JSON_OPTION) -> None:
    """The tenant's repositories, by name."""
    with tenant_database(tenant) as database:
        found = service_factory(database).repositories().list(Caller.operator(), tenant)
    if as_json:
        print_rows([_record(r) for r in found], (), as_json=True)
    else:
        print_rows([_row(r) for r in found], COLUMNS, as_json=False)


@repo_app.command("show")
def show(name: str = NAME_ARGUMENT, tenant: str = TENANT_OPTION, as_json: bool = JSON_OPTION):
    """One repository, its setup script in full."""
    with tenant_database(tenant) as database:
        found = service_factory(database).repositories().get(Caller.operator(), tenant, name)
    print_record(_record(found), as_json)


@repo_app.command("remove")
def remove(name: str = NAME_ARGUMENT, tenant: str = TENANT_OPTION) -> None:
    """Forget a repository (its sessions keep their history and their pushed branches)."""
    with tenant_database(tenant) as database:
        service_factory(database).repositories().remove(Caller.operator(), tenant, name)
    print(f"removed repository {name}")
