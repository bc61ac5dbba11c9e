"""A wave's world in memory: a real SQLite database file (migrated once per test run, copied per
test), a fake agent server behind the supervisor's port, and a clock the test moves."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from domain.agent import Agent
from domain.caller import Caller
from domain.events import SessionEvent
from domain.session import Session
from domain.supervision_policy import SupervisionSettings
from domain.tenant import Tenant
from resources.database import Database, tenant_scope, unit_of_work
from resources.database.migrate import upgrade
from services.session_service import SessionService, SubmitSession
from services.session_workspaces import SessionWorkspaces, WorkspaceLayout
from services.supervision.wave import WaveSupervisor
from services.top_up import TopUp, claim_next_for
from tests.unit.supervision.fake_agent_server import FakeAgentServers, FakeClock, FakeServer

TENANT = "acme"
OWNER = "wave-1"
AGENT_URL = "http://agent-1.test"
LEASE = timedelta(seconds=60)
# Real waits are fractions of a millisecond; what is measured in time (deadlines, leases, a lost
# server) runs on the test's clock.
FAST = SupervisionSettings(
    lease=LEASE,
    renew_every=timedelta(seconds=0.01),
    poll_seconds=0.002,
    routing_wait_seconds=0.002,
    diff_settle_seconds=0.0,
    event_flush_seconds=0.002,
    # The fake server has no disk: its sessions work in the tenant's worktree on it (a scratch
    # workspace per session, the default, is tested on real servers and runtimes).
    session_workspaces=False,
)


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("supervision") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def database(migrated_sqlite: Path, tmp_path: Path) -> Iterator[Database]:
    path = tmp_path / "indorch.db"
    shutil.copyfile(migrated_sqlite, path)
    database = Database(f"sqlite:///{path}")
    # No fsync per commit (the test's file need not survive a power cut): commits in microseconds.
    event.listen(database.engine, "connect", _no_sync)
    yield database
    database.dispose()


def _no_sync(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=OFF")
    cursor.close()


@dataclass
class World:
    database: Database
    clock: FakeClock
    servers: FakeAgentServers
    service: SessionService
    agent: Agent
    published: list[SessionEvent] = field(default_factory=list)

    @property
    def server(self) -> FakeServer:
        return self.servers.server(AGENT_URL)

    def submit(self, prompt: str = "Do it.", *, claim: bool = True, **fields: object) -> str:
        """A new session of the tenant, claimed by the wave `OWNER` unless `claim` is False."""
        request = SubmitSession(title=prompt[:40], prompt=prompt, **fields)
        session_id = self.service.submit(Caller.operator(), TENANT, request).id
        if claim:
            self.service.claim(TENANT, session_id, OWNER, LEASE)
        return session_id

    def session(self, session_id: str) -> Session:
        return self.service.get(Caller.operator(), TENANT, session_id)

    def event_types(self, session_id: str) -> list[str]:
        return [
            event.event_type for event in self.service.events(Caller.operator(), TENANT, session_id)
        ]

    def wave(
        self, owner: str = OWNER, *, workspaces_dir: Path | None = None, **settings: object
    ) -> WaveSupervisor:
        """With `workspaces_dir`, each session in a scratch workspace of its own made there
        (real git, local disk: the fake server takes any directory)."""
        if workspaces_dir is not None:
            settings = {"session_workspaces": True, **settings}
        return WaveSupervisor(
            self.database,
            self.servers,
            tenant=TENANT,
            owner=owner,
            publish=self.published.append,
            settings=replace(FAST, **settings),  # type: ignore[arg-type]
            clock=self.clock,
            workspaces=(
                SessionWorkspaces(self.database, WorkspaceLayout(workspaces_dir))
                if workspaces_dir is not None
                else None
            ),
        )

    def top_up(self, size: int) -> TopUp:
        return TopUp(
            claim=claim_next_for(self.service, TENANT, OWNER, LEASE),
            size=size,
            until=self.clock() + timedelta(hours=2),
            every_seconds=0.002,
            linger_seconds=0.02,
        )


@pytest.fixture
def world(database: Database) -> World:
    clock = FakeClock()
    servers = FakeAgentServers(clock)
    with unit_of_work(database) as uow:
        uow.tenants.add(Tenant(slug=TENANT, name="Acme"))
    with tenant_scope(TENANT), unit_of_work(database) as uow:
        agent = uow.agents.add(Agent(tenant_id=TENANT, name="agent-1", server_url=AGENT_URL))
    service = SessionService(database, agent_control=servers.control(), clock=clock)
    return World(database, clock, servers, service, agent)
