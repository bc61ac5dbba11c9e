"""`indorch runtime ...`: the tenants' managed OpenCode runtimes on this host.

Every action goes through `services.runtime_manager.RuntimeManager`, as the operator. `start`
launches the tenant's own server (its OS user, its sandbox, a random password sealed in the
database) and registers it as the tenant's agent; `stop` stops it (work starts it again, via the
runtime sensor, unless `--disable`); `list` shows them; `reconcile` runs the sensor's tick once.

Exit codes: 0 done; 2 refused (unknown tenant, no OpenCode config, the sandbox unavailable and
unsandboxed runs not allowed); 3 the tenant waits for a runtime slot (the host's memory budget
is full: its sessions stay queued); 1 the server did not start (the log's tail says why).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from domain.caller import Caller
from indorch.context import open_database, tenant_database
from indorch.output import print_error, print_record, print_rows, print_warning

if TYPE_CHECKING:
    from domain.runtime import Runtime

runtime_app = typer.Typer(
    help="Start, stop and list the tenants' managed OpenCode runtimes on this host.",
    no_args_is_help=True,
)
COLUMNS = ("tenant", "status", "sandboxed", "url", "pid", "agent", "memory", "restarts", "reason")
TENANT_OPTION = typer.Option(..., "--tenant", "-t", help="Tenant slug.")
JSON_OPTION = typer.Option(False, "--json", help="Print JSON.")
EXIT_START_FAILED = 1
EXIT_WAITING_FOR_SLOT = 3


def _row(runtime: Runtime) -> dict[str, Any]:
    return {
        "tenant": runtime.tenant_id,
        "status": runtime.status.value,
        "sandboxed": "yes" if runtime.sandboxed else "NO",
        "url": runtime.server_url,
        "pid": runtime.pid,
        "agent": runtime.agent_id,
        "memory": f"{runtime.resident_mb} MB" if runtime.resident_mb is not None else None,
        "restarts": runtime.restarts,
        "reason": runtime.reason or None,
    }


@runtime_app.command("start")
def start(
    tenant: str = TENANT_OPTION,
    opencode_config: Path | None = typer.Option(
        None,
        "--opencode-config",
        help="OpenCode config (JSON) for the runtime; default: $INDORCH_RUNTIME_OPENCODE_CONFIG.",
        exists=True,
        dir_okay=False,
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Start the tenant's runtime (its OS user is made on first use) and register it."""
    from domain.runtime import RuntimeSlotUnavailable
    from resources.runtime_host.opencode_runtime import RuntimeStartError
    from services.factory import ServiceFactory

    config = opencode_config.read_text() if opencode_config else None
    with tenant_database(tenant) as database:
        manager = ServiceFactory(database).runtimes()
        try:
            runtime = manager.start(Caller.operator(), tenant, config)
        except RuntimeSlotUnavailable as waiting:
            print_warning(f"{waiting}; it starts when a slot frees (the runtime sensor)")
            sys.exit(EXIT_WAITING_FOR_SLOT)
        except RuntimeStartError as error:
            print_error(f"the runtime of tenant {tenant} did not start: {error}")
            sys.exit(EXIT_START_FAILED)
    if not runtime.sandboxed:
        print_warning("this runtime runs WITHOUT a sandbox: it is not isolated from other tenants")
    print_record(runtime.model_dump(mode="json") if as_json else _row(runtime), as_json=as_json)


@runtime_app.command("stop")
def stop(
    tenant: str = TENANT_OPTION,
    disable: bool = typer.Option(
        False, "--disable", help="Also stop starting it on demand (forget the runtime)."
    ),
) -> None:
    """Stop the tenant's runtime on this host (its agent is deactivated first)."""
    from services.factory import ServiceFactory

    with tenant_database(tenant) as database:
        manager = ServiceFactory(database).runtimes()
        if disable:
            manager.forget(Caller.operator(), tenant)
            print(f"runtime of {tenant} stopped and disabled")
            return
        runtime = manager.stop(Caller.operator(), tenant)
    print_record(_row(runtime), as_json=False)


@runtime_app.command("list")
def list_runtimes(
    tenant: str | None = typer.Option(None, "--tenant", "-t", help="Only this tenant's."),
    as_json: bool = JSON_OPTION,
) -> None:
    """The runtimes (every tenant's unless --tenant)."""
    from services.factory import ServiceFactory

    database = open_database()
    try:
        if tenant is not None:
            from resources.database import unit_of_work

            with unit_of_work(database) as uow:
                uow.tenants.get(tenant)
        runtimes = ServiceFactory(database).runtimes().list(Caller.operator(), tenant)
    finally:
        database.dispose()
    if as_json:
        print_rows([r.model_dump(mode="json") for r in runtimes], COLUMNS, as_json=True)
    else:
        print_rows([_row(r) for r in runtimes], COLUMNS, as_json=False)


@runtime_app.command("reconcile")
def reconcile() -> None:
    """One tick of the runtime sensor: restart the dead, stop the idle, start where work waits."""
    from services.factory import ServiceFactory

    database = open_database()
    try:
        report = ServiceFactory(database).runtimes().reconcile(Caller.operator())
    finally:
        database.dispose()
    print(report.summary())
