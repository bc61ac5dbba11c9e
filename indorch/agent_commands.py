"""`indorch agent ...`: a tenant's agents, each an OpenCode server plus an agent profile.

Every write goes through `services.agent_registry.AgentRegistry`, as the operator; this module
parses, probes servers (the registration's health check, `list --health`) and prints. Only the
name of the environment variable holding a server's Basic-auth password is stored; the password
is read from the environment when the server is called, here and by the supervisors. The
database stack and the OpenCode client are imported when a command needs them (see
`indorch.main`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import typer

from domain.agent import Agent
from domain.caller import Caller
from domain.clock import utcnow
from indorch.context import tenant_database
from indorch.output import print_record, print_rows

if TYPE_CHECKING:
    from resources.opencode.models import Health
    from services.agent_registry import AgentRegistry

agent_app = typer.Typer(
    help="Register, list, inspect, drain, deactivate, activate and remove a tenant's agents.",
    no_args_is_help=True,
)
COLUMNS = (
    "id",
    "name",
    "url",
    "capacity",
    "tier",
    "success rate",
    "status",
    "active",
    "sessions",
    "last heartbeat",
)
TENANT_OPTION = typer.Option(..., "--tenant", "-t", help="Tenant slug.")
AGENT_ARGUMENT = typer.Argument(..., help="AGENT-... id.")
JSON_OPTION = typer.Option(False, "--json", help="Print JSON.")
CHECK_TIMEOUT_SECONDS = 5.0
CONNECT_TIMEOUT_SECONDS = 3.0


@contextmanager
def _registry(tenant: str, check: bool = False) -> Iterator[AgentRegistry]:
    """The agent service on the configured database (unknown tenant -> NotFound)."""
    from services.agent_registry import AgentRegistry

    with tenant_database(tenant) as database:
        yield AgentRegistry(database, health_check=_require_healthy if check else None)


def agent_record(agent: Agent, active_sessions: int | None = None) -> dict[str, Any]:
    performance = agent.performance
    record = {
        **agent.model_dump(mode="json"),
        "active": agent.active,
        "success_rate": performance.success_rate,  # None until a session has finished
        "tier": performance.tier.value,
        "breaker_open": performance.breaker_open,
        "breaker": performance.breaker_state(utcnow()).value,  # CLOSED, OPEN or HALF_OPEN now
    }
    if active_sessions is not None:
        record["active_sessions"] = active_sessions
    return record


def _table_row(
    agent: Agent, active_sessions: int, health: dict[str, Any] | None = None
) -> dict[str, Any]:
    heartbeat = agent.last_heartbeat_at
    rate = agent.performance.success_rate
    row: dict[str, Any] = {
        "id": agent.id,
        "name": agent.name,
        "url": agent.server_url,
        "capacity": agent.capacity,
        "tier": agent.performance.tier.value,
        "success rate": "-" if rate is None else f"{rate:.0%}",
        "status": agent.status.value,
        "active": agent.active,
        "sessions": active_sessions,
        "last heartbeat": heartbeat.isoformat(timespec="seconds") if heartbeat else None,
    }
    if health is not None:
        row["health"] = _health_cell(health)
    return row


def _health_cell(health: dict[str, Any]) -> str:
    if health["status"] == "down":
        return "down"
    return f"{health['status']} {health['latency_ms']:.0f} ms"


# -- talking to the server ----------------------------------------------------------------------


async def _health(agent: Agent) -> tuple[Health, float]:
    """The server's /global/health and the round trip in ms; one attempt, short timeouts."""
    import httpx

    from resources.opencode.client import OpenCodeClient
    from resources.opencode.control import agent_password

    timeout = httpx.Timeout(CHECK_TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS)
    started = time.perf_counter()
    async with OpenCodeClient(
        agent.server_url, password=agent_password(agent), timeout=timeout, attempts=1
    ) as client:
        health = await client.health()
    return health, (time.perf_counter() - started) * 1000


async def _probe(agent: Agent) -> dict[str, Any]:
    from resources.opencode.errors import AgentServerError

    try:
        health, latency_ms = await _health(agent)
    except (AgentServerError, ValueError) as error:  # ValueError: not an OpenCode answer
        return {"status": "down", "error": _one_line(str(error))}
    return {
        "status": "ok" if health.healthy else "unhealthy",
        "version": health.version,
        "latency_ms": round(latency_ms, 1),
    }


async def _probe_all(agents: list[Agent]) -> list[dict[str, Any]]:
    return list(await asyncio.gather(*(_probe(agent) for agent in agents)))


def _require_healthy(agent: Agent) -> Health:
    """Refuse (nothing written) unless the server answers GET /global/health as healthy."""
    from resources.opencode.control import agent_password
    from resources.opencode.errors import AgentServerError

    status_code = None
    try:
        health, _ = asyncio.run(_health(agent))
    except AgentServerError as error:
        problem, status_code = error.detail.removeprefix("GET /global/health: "), error.status_code
    except ValueError as error:
        problem = f"not an OpenCode health answer ({type(error).__name__})"
    else:
        if health.healthy:
            return health
        problem = "the server says it is not healthy"
    if agent.password_env and agent_password(agent) is None:
        problem += f"; environment variable {agent.password_env} is not set"
    raise AgentServerError(
        agent.server_url,
        f"did not answer GET /global/health: {_one_line(problem)}; nothing registered "
        "(fix it, or use --no-check to register anyway)",
        status_code,
    )


def _one_line(text: str) -> str:
    return " ".join(text.split())


# -- commands -------------------------------------------------------------------------------------


@agent_app.command("register")
def register(
    tenant: str = TENANT_OPTION,
    name: str = typer.Option(..., help="Name of the agent (unique within the tenant)."),
    url: str = typer.Option(..., "--url", help="Base URL of its OpenCode server."),
    password_env: str = typer.Option(
        None,
        "--password-env",
        help="Environment variable holding the server's Basic-auth password (never stored); "
        "its name must start with INDORCH_AGENT_PASSWORD_.",
    ),
    opencode_agent: str = typer.Option("build", help="OpenCode agent to run prompts with."),
    permission_policy: str = typer.Option(
        None,
        "--permission-policy",
        help="Answer its sessions' permission requests: wait, reject or allow (operator only).",
    ),
    model: str = typer.Option(None, help="Model as provider/model (default: the server's)."),
    capabilities: list[str] = typer.Option(
        None, "--capability", help="A capability it offers (repeat the option for more)."
    ),
    capacity: int = typer.Option(5, help="Sessions it may run at once (1-50)."),
    check: bool = typer.Option(
        True, "--check/--no-check", help="Check the server answers GET /global/health first."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Register an OpenCode server as an agent (refused, nothing written, if it does not answer)."""
    agent = Agent(
        tenant_id=tenant,
        name=name.strip(),
        server_url=url,
        password_env=password_env,
        opencode_agent=opencode_agent,
        permission_policy=permission_policy,
        model=model,
        capabilities=capabilities or [],
        capacity=capacity,
    )
    with _registry(tenant, check) as registry:
        registry.register(Caller.operator(), agent, check=check)
    print_record(agent_record(agent), as_json)


@agent_app.command("list")
def list_agents(
    tenant: str = TENANT_OPTION,
    health: bool = typer.Option(
        False, "--health", help="Probe each server's /global/health now (ok/down, latency)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List a tenant's agents (lifecycle status, sessions on each), optionally with health."""
    with _registry(tenant) as registry:
        views = registry.list(Caller.operator(), tenant)
    agents = [view.agent for view in views]
    probes = asyncio.run(_probe_all(agents)) if health and agents else [None] * len(agents)
    if as_json:
        records = [agent_record(view.agent, view.active_sessions) for view in views]
        if health:
            records = [
                {**record, "health": probe} for record, probe in zip(records, probes, strict=True)
            ]
        print_rows(records, COLUMNS, as_json=True)
        return
    rows = [
        _table_row(view.agent, view.active_sessions, probe)
        for view, probe in zip(views, probes, strict=True)
    ]
    print_rows(rows, (*COLUMNS, "health") if health else COLUMNS, as_json=False)


@agent_app.command("show")
def show(
    agent_id: str = AGENT_ARGUMENT,
    tenant: str = TENANT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Show one agent: profile, lifecycle status, performance and tier, sessions on it."""
    with _registry(tenant) as registry:
        view = registry.get(Caller.operator(), tenant, agent_id)
    print_record(agent_record(view.agent, view.active_sessions), as_json)


@agent_app.command("drain")
def drain(
    agent_id: str = AGENT_ARGUMENT, tenant: str = TENANT_OPTION, as_json: bool = JSON_OPTION
) -> None:
    """Route no new sessions to the agent; the sessions on it run to their end."""
    with _registry(tenant) as registry:
        agent = registry.drain(Caller.operator(), tenant, agent_id)
    print_record(agent_record(agent), as_json)


@agent_app.command("deactivate")
def deactivate(
    agent_id: str = AGENT_ARGUMENT, tenant: str = TENANT_OPTION, as_json: bool = JSON_OPTION
) -> None:
    """Switch the agent off: no new sessions (the ones on it are not stopped)."""
    with _registry(tenant) as registry:
        agent = registry.deactivate(Caller.operator(), tenant, agent_id)
    print_record(agent_record(agent), as_json)


@agent_app.command("activate")
def activate(
    agent_id: str = AGENT_ARGUMENT, tenant: str = TENANT_OPTION, as_json: bool = JSON_OPTION
) -> None:
    """Put a draining or inactive agent back into routing."""
    with _registry(tenant) as registry:
        agent = registry.activate(Caller.operator(), tenant, agent_id)
    print_record(agent_record(agent), as_json)


@agent_app.command("remove")
def remove(
    agent_id: str = AGENT_ARGUMENT, tenant: str = TENANT_OPTION, as_json: bool = JSON_OPTION
) -> None:
    """Delete the agent; refused (nothing changed) while sessions are on it: drain it first."""
    with _registry(tenant) as registry:
        agent = registry.remove(Caller.operator(), tenant, agent_id)
    if as_json:
        print_record({"id": agent.id, "name": agent.name, "removed": True}, as_json=True)
    else:
        typer.echo(f"agent {agent.id} ({agent.name}) removed")
