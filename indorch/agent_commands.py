"""`indorch agent ...`: a tenant's agents, each an OpenCode server plus an agent profile.

Only the name of the environment variable holding a server's Basic-auth password is stored; the
password is read from the environment when the server is called, here and by the supervisors.
The database stack and the OpenCode client are imported when a command needs them (see
`indorch.main`).
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import typer

from domain.agent import Agent
from domain.clock import utcnow
from domain.errors import AlreadyExists, InvalidInput
from indorch.context import tenant_database, tenant_work
from indorch.output import print_record, print_rows

if TYPE_CHECKING:
    from resources.opencode.models import Health

agent_app = typer.Typer(help="Register, list and inspect a tenant's agents.", no_args_is_help=True)
COLUMNS = ("id", "name", "url", "capacity", "tier", "success rate", "active", "last heartbeat")
TENANT_OPTION = typer.Option(..., "--tenant", "-t", help="Tenant slug.")
ENV_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
CHECK_TIMEOUT_SECONDS = 5.0
CONNECT_TIMEOUT_SECONDS = 3.0


def agent_record(agent: Agent) -> dict[str, Any]:
    performance = agent.performance
    return {
        **agent.model_dump(mode="json"),
        "success_rate": performance.success_rate,
        "tier": performance.tier.value,
        "breaker_open": performance.breaker_open,
    }


def _table_row(agent: Agent, health: dict[str, Any] | None = None) -> dict[str, Any]:
    heartbeat = agent.last_heartbeat_at
    row: dict[str, Any] = {
        "id": agent.id,
        "name": agent.name,
        "url": agent.server_url,
        "capacity": agent.capacity,
        "tier": agent.performance.tier.value,
        "success rate": f"{agent.performance.success_rate:.0%}",
        "active": agent.active,
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


# -- validation -----------------------------------------------------------------------------------


def _require_host(url: str) -> None:
    parts = urlsplit(url)
    if not parts.hostname:
        raise InvalidInput("server_url", f"{url!r} has no host")
    try:
        parts.port  # noqa: B018  (raises on a malformed port)
    except ValueError as error:
        raise InvalidInput("server_url", f"{url!r}: {error}") from None


def _check_profile(password_env: str | None) -> None:
    if password_env is not None and not ENV_VAR_NAME.fullmatch(password_env):
        raise InvalidInput("password-env", f"{password_env!r} is not an environment variable name")


# -- commands -------------------------------------------------------------------------------------


@agent_app.command("register")
def register(
    tenant: str = TENANT_OPTION,
    name: str = typer.Option(..., help="Name of the agent (unique within the tenant)."),
    url: str = typer.Option(..., "--url", help="Base URL of its OpenCode server."),
    password_env: str = typer.Option(
        None,
        "--password-env",
        help="Environment variable holding the server's Basic-auth password (never stored).",
    ),
    opencode_agent: str = typer.Option("build", help="OpenCode agent to run prompts with."),
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
    from resources.database import tenant_scope, unit_of_work

    _check_profile(password_env)
    agent = Agent(
        tenant_id=tenant,
        name=name.strip(),
        server_url=url,
        password_env=password_env,
        opencode_agent=opencode_agent,
        model=model,
        capabilities=capabilities or [],
        capacity=capacity,
    )
    _require_host(agent.server_url)
    with tenant_database(tenant) as database:
        with tenant_scope(tenant), unit_of_work(database) as uow:
            if any(existing.name == agent.name for existing in uow.agents.list()):
                raise AlreadyExists("agent", agent.name)
        if check:
            _require_healthy(agent)  # outside any transaction: no lock held while we wait
            agent.last_heartbeat_at = utcnow()
        with tenant_scope(tenant), unit_of_work(database) as uow:
            uow.agents.add(agent)
    print_record(agent_record(agent), as_json)


@agent_app.command("list")
def list_agents(
    tenant: str = TENANT_OPTION,
    health: bool = typer.Option(
        False, "--health", help="Probe each server's /global/health now (ok/down, latency)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List a tenant's agents, optionally with their servers' live health."""
    with tenant_work(tenant) as uow:
        agents = uow.agents.list()
    probes = asyncio.run(_probe_all(agents)) if health and agents else [None] * len(agents)
    if as_json:
        records = [agent_record(agent) for agent in agents]
        if health:
            records = [
                {**record, "health": probe} for record, probe in zip(records, probes, strict=True)
            ]
        print_rows(records, COLUMNS, as_json=True)
        return
    rows = [_table_row(agent, probe) for agent, probe in zip(agents, probes, strict=True)]
    print_rows(rows, (*COLUMNS, "health") if health else COLUMNS, as_json=False)


@agent_app.command("show")
def show(
    agent_id: str = typer.Argument(..., help="AGENT-... id."),
    tenant: str = TENANT_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show one agent: profile, capacity, performance and tier, sessions in flight."""
    with tenant_work(tenant) as uow:
        agent = uow.agents.get(agent_id)
        active = uow.sessions.active_by_agent().get(agent.id, 0)
    print_record({**agent_record(agent), "active_sessions": active}, as_json)
