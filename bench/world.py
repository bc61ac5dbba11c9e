"""A fresh application database per scenario, with its tenants and agents registered.

SQLite (the embedded default: a file in the bench's scratch directory) or PostgreSQL (a new
database on the server `--postgres` names, dropped afterwards). Tenants get a concurrency limit
and a token budget high enough never to be the limit; each tenant registers agents of capacity
`AGENT_CAPACITY` spread round robin over the OpenCode servers (several agents may point at one
server).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text

from domain.agent import MAX_CAPACITY, Agent
from domain.tenant import Tenant
from resources.database import Database, tenant_scope, unit_of_work
from resources.database.engine import normalized_url
from resources.database.migrate import upgrade

AGENT_CAPACITY = MAX_CAPACITY  # 50, the most an agent may take
TENANT_LIMIT = 10_000
TOKEN_BUDGET = 10**12


@dataclass(frozen=True)
class World:
    url: str
    tenants: list[str]
    agents: int
    capacity_per_server: dict[str, int]


def tenant_slugs(count: int) -> list[str]:
    return [f"bench-{number}" for number in range(1, count + 1)]


def agents_per_tenant(sessions: int, tenants: int, servers: int) -> int:
    """One agent per server at least; more when a tenant's share exceeds their capacity."""
    share = math.ceil(sessions / tenants)
    return max(servers, math.ceil(share / AGENT_CAPACITY))


@contextmanager
def database(kind: str, scratch: Path, name: str, postgres_url: str) -> Iterator[str]:
    """The URL of a new, migrated, empty application database; PostgreSQL ones are dropped."""
    if kind == "sqlite":
        path = scratch / f"{name}.db"
        path.unlink(missing_ok=True)
        url = f"sqlite:///{path}"
        upgrade(url)
        yield url
        return
    database_name = f"indorch_bench_{name.replace('-', '_')}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(normalized_url(postgres_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{database_name}"'))
    url = normalized_url(postgres_url).set(database=database_name).render_as_string(False)
    try:
        upgrade(url)
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{database_name}" WITH (FORCE)'))
        admin.dispose()


def register(url: str, tenants: list[str], servers: list[str], per_tenant: int) -> World:
    db = Database(url)
    capacity: dict[str, int] = dict.fromkeys(servers, 0)
    try:
        with unit_of_work(db) as uow:
            for slug in tenants:
                uow.tenants.add(
                    Tenant(
                        slug=slug,
                        name=f"Bench {slug}",
                        max_concurrent_sessions=TENANT_LIMIT,
                        monthly_token_budget=TOKEN_BUDGET,
                    )
                )
        for slug in tenants:
            with tenant_scope(slug), unit_of_work(db) as uow:
                for number in range(per_tenant):
                    server = servers[number % len(servers)]
                    uow.agents.add(
                        Agent(
                            tenant_id=slug,
                            name=f"{slug}-agent-{number + 1}",
                            server_url=server,
                            capacity=AGENT_CAPACITY,
                        )
                    )
                    capacity[server] += AGENT_CAPACITY
    finally:
        db.dispose()
    return World(url, tenants, per_tenant * len(tenants), capacity)
