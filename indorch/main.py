"""`indorch`: the operator's command line. Errors: one line on stderr and a meaningful exit code.

Exit codes: 0 success; 2 bad input, unknown or duplicate record, or a refused operation
(nothing is written); 1 an unexpected failure (database unreachable, ...).

Start-up time matters (every call is a process): the command modules import the database stack,
the OpenCode client and the services when a command runs, so `indorch --help`, a usage error or a
command that does not need them does not pay for them.
"""

from __future__ import annotations

import sys

import typer

from domain.errors import DomainError
from indorch.agent_commands import agent_app
from indorch.api_commands import api_app
from indorch.apikey_commands import apikey_app
from indorch.checkpoint_commands import checkpoints as _checkpoints_command  # noqa: F401
from indorch.db_commands import db_app
from indorch.demo.command import demo
from indorch.finetune_commands import finetune_app
from indorch.health_command import health
from indorch.model_commands import model_app
from indorch.output import print_error
from indorch.patch_command import patch as _patch_command  # noqa: F401
from indorch.region_commands import region_app
from indorch.repo_commands import repo_app
from indorch.retention_commands import retention_app
from indorch.runtime_commands import runtime_app
from indorch.secret_commands import secret_app
from indorch.session_commands import session_app
from indorch.tenant_commands import tenant_app
from indorch.usage_commands import usage_app
from indorch.user_commands import user_app

EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2

app = typer.Typer(
    name="indorch",
    help="Industrial Orchestrator: tenants, users, API keys, secrets, agents, repositories, "
    "sessions, models, usage and the database.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(db_app, name="db")
app.add_typer(tenant_app, name="tenant")
app.add_typer(user_app, name="user")
app.add_typer(apikey_app, name="apikey")
app.add_typer(agent_app, name="agent")
app.add_typer(secret_app, name="secret")
app.add_typer(session_app, name="session")
app.add_typer(usage_app, name="usage")
app.add_typer(finetune_app, name="finetune")
app.add_typer(model_app, name="model")
app.add_typer(repo_app, name="repo")
app.add_typer(runtime_app, name="runtime")
app.add_typer(api_app, name="api")
app.add_typer(retention_app, name="retention")
app.add_typer(region_app, name="region")
app.command("demo")(demo)
app.command("health")(health)


def run() -> None:
    """Console entry point: maps typed errors to one line and an exit code, in one place."""
    try:
        app()  # usage errors are click's own: it prints them and exits 2
    except DomainError as error:
        print_error(str(error))
        sys.exit(EXIT_BAD_INPUT)
    except Exception as error:
        from sqlalchemy.exc import OperationalError  # loaded already if a database was opened

        if not isinstance(error, OperationalError):
            raise
        print_error(f"database unavailable: {error.orig or error}")
        sys.exit(EXIT_FAILURE)
