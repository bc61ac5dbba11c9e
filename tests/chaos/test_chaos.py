"""Chaos: the production processes (deploy/Procfile's code server and daemon, deploy/dagster.yaml
on PostgreSQL) run sessions of three tenants on two real OpenCode servers and the scripted model
while, one after another, the daemon, a run process, the code server, an OpenCode server and
Redis are killed with SIGKILL (and started again, as a supervisor would) and PostgreSQL crashes
and restarts (`pg_ctl restart -m immediate`).

Contract: every submitted session ends COMPLETED, or in a state that will not change and says
why (no session lost); no agent session is given its prompt twice, and no session gets more
agent sessions than it had attempts; every session's events are numbered 1..n with no gap; no
tenant ever holds more sessions than its concurrency limit (sampled every 0.5 s).

The suite uses its own PostgreSQL cluster and Redis server (tests/chaos/private_services.py).
It prints a summary, and writes it as JSON to the file $INDORCH_CHAOS_REPORT names, if set.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg
import pytest

from domain.agent import Agent
from domain.caller import Caller
from domain.tenant import Tenant
from resources.database import Database, tenant_scope, unit_of_work
from resources.database.migrate import upgrade
from services.session_service import SessionService, SubmitSession
from standins.opencode_server import OpenCodeServer
from standins.scripted_model import ScriptedModel
from tests.chaos.invariants import (
    ConcurrencySampler,
    PromptDeliveries,
    SessionRow,
    event_sequence_faults,
    read_sessions,
)
from tests.chaos.private_services import (
    PrivatePostgres,
    PrivateRedis,
    descendants,
    run_processes,
    wait_gone,
)
from tests.integration.deploy.host import ProductionHost, production_environment, wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.opencode,
    pytest.mark.timeout(1200),
]

TENANT_LIMITS = {"chaos-a": 2, "chaos-b": 3, "chaos-c": 4}
SESSIONS_PER_TENANT_PER_BATCH = 1
SESSION_SECONDS = 6  # the scripted model's answer takes this long: faults land mid-session
SERVERS = 2
BETWEEN_FAULTS_SECONDS = 8
IN_FLIGHT = frozenset({"PENDING", "QUEUED", "RUNNING"})
SETTLE_SECONDS = 420  # leases 60 s, monitoring 60 s, start timeout 300 s, retry backoff


@dataclass
class Chaos:
    """The world under test and what happened to it."""

    host: ProductionHost
    postgres: PrivatePostgres
    redis: PrivateRedis
    servers: list[OpenCodeServer]
    service: SessionService
    superuser_dsn: str
    submitted: dict[str, str] = field(default_factory=dict)  # marker -> session id
    faults: list[dict[str, Any]] = field(default_factory=list)
    _counter: int = 0

    def submit_batch(self) -> None:
        for tenant in TENANT_LIMITS:
            for _ in range(SESSIONS_PER_TENANT_PER_BATCH):
                self._counter += 1
                marker = f"{tenant}-{self._counter}"
                prompt = (
                    f'[script:slow seconds={SESSION_SECONDS} reply="done {marker}"] '
                    f"chaos-{marker}: answer slowly."
                )
                request = SubmitSession(title=f"chaos {marker}", prompt=prompt)
                session = self.service.submit(Caller.operator(), tenant, request)
                self.submitted[f"chaos-{marker}"] = session.id

    def inject(self, fault: str, action: Callable[[], str]) -> None:
        started = time.monotonic()
        detail = action()
        self.faults.append(
            {
                "fault": fault,
                "at": datetime.now(UTC).isoformat(timespec="seconds"),
                "detail": detail,
                "seconds_to_restore": round(time.monotonic() - started, 1),
            }
        )

    def sessions(self) -> list[SessionRow]:
        with psycopg.connect(self.superuser_dsn, connect_timeout=5) as connection:
            return read_sessions(connection)

    def completed(self) -> int:
        return sum(1 for session in self.sessions() if session.status == "COMPLETED")

    def busy(self) -> bool:
        """Whether sessions are running; when none is left to run, another batch is submitted."""
        statuses = {session.status for session in self.sessions()}
        if not statuses & IN_FLIGHT:
            self.submit_batch()
        return "RUNNING" in statuses

    def explain(self) -> str:
        """For a failed wait: each session's state, the latest Dagster runs, the processes' logs."""
        lines = [f"faults so far: {self.faults}", "sessions:"]
        lines += [
            f"  {s.id} {s.tenant} {s.status} retries={s.retry_count} {s.reason[:120]!r}"
            for s in self.sessions()
        ]
        dagster_dsn = self.superuser_dsn.rsplit("/", 1)[0] + "/dagster"
        with psycopg.connect(dagster_dsn, connect_timeout=5) as connection:
            runs = connection.execute(
                "SELECT run_id, status, create_timestamp, update_timestamp FROM runs "
                "ORDER BY create_timestamp DESC LIMIT 15"
            ).fetchall()
        lines.append("latest Dagster runs:")
        lines += [
            f"  {run_id[:8]} {status} created {made} updated {at}"
            for run_id, status, made, at in runs
        ]
        lines.append(self.host.tails(60))
        return "\n".join(lines)

    def history(self, session_ids: list[str], last: int = 20) -> str:
        """The last events of these sessions (what their waves did last), for a lost session."""
        lines: list[str] = []
        with psycopg.connect(self.superuser_dsn, connect_timeout=5) as connection:
            for session_id in session_ids:
                events = connection.execute(
                    "SELECT seq, created_at, event_type, new_status, reason, data::text "
                    "FROM session_events WHERE session_id = %s ORDER BY seq DESC LIMIT %s",
                    (session_id, last),
                ).fetchall()
                lines.append(f"{session_id}, its last {len(events)} events:")
                lines += [
                    f"  {seq} {at:%H:%M:%S} {kind} {status or ''} {reason[:80]!r} {data[:160]}"
                    for seq, at, kind, status, reason, data in reversed(events)
                ]
        return "\n".join(lines)

    # --- the faults ----------------------------------------------------------------------------

    def kill_daemon(self) -> str:
        self.host.restart("daemon")
        return "dagster-daemon: kill -9 of its process group, started again"

    def kill_run_process(self) -> str:
        runs: list[int] = []

        def a_run_process() -> bool:
            runs[:] = run_processes(self.host.processes["code"].pid)
            return bool(runs)

        wait_for("a run process of the code server", a_run_process, within=120, every=0.5)
        victim = runs[0]
        tree = [victim, *descendants(victim)]
        for pid in tree:
            os.kill(pid, signal.SIGKILL)
        wait_gone(victim)
        return f"run process {victim} and its {len(tree) - 1} children: kill -9"

    def kill_code_server(self) -> str:
        runs = run_processes(self.host.processes["code"].pid)
        self.host.restart("code")
        return f"code server: kill -9 of its process group ({len(runs)} run processes in it)"

    def kill_agent_server(self) -> str:
        server = self.servers[0]
        server.kill()
        server.stop()  # forgets the dead process (the workspace, given, stays)
        server.start()  # the same port, HOME and workspace
        return f"OpenCode server {server.url}: kill -9, started again"

    def kill_redis(self) -> str:
        self.redis.kill()
        self.redis.start()
        return f"redis-server :{self.redis.port}: kill -9, started again empty"

    def restart_postgres(self) -> str:
        self.postgres.restart()
        return f"PostgreSQL :{self.postgres.port}: pg_ctl restart -m immediate"


@pytest.fixture
def chaos(
    tmp_path: Path,
    private_postgres: PrivatePostgres,
    private_redis: PrivateRedis,
    opencode_binary: Path,
    opencode_home: Path,
    scripted_model_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Chaos]:
    app_url = private_postgres.create_database("indorch")
    upgrade(app_url)
    dagster_url = private_postgres.create_database("dagster")
    servers = [
        OpenCodeServer(
            scripted_model_url,
            home=opencode_home,
            binary=opencode_binary,
            workspace=tmp_path / f"agent-{number}",
        )
        for number in range(1, SERVERS + 1)
    ]
    database = Database(app_url)
    environment = production_environment(
        tmp_path,
        dagster_postgres_url=dagster_url,
        database_url=app_url,
        redis_url=private_redis.url,
        INDORCH_WORKSPACES_DIR=str(tmp_path / "workspaces"),
    )
    try:
        for server in servers:
            server.start()
        seed_tenants(database, servers)
        monkeypatch.setenv("DAGSTER_PG_URL", environment["DAGSTER_PG_URL"])
        with dg.DagsterInstance.from_config(environment["DAGSTER_HOME"]) as instance:
            instance.add_dynamic_partitions("tenants", list(TENANT_LIMITS))
        with ProductionHost(environment, tmp_path / "logs") as host:
            host.start("code", "daemon")
            yield Chaos(
                host=host,
                postgres=private_postgres,
                redis=private_redis,
                servers=servers,
                service=SessionService(database),
                superuser_dsn=private_postgres.database_url("indorch").replace(
                    "postgresql+psycopg", "postgresql"
                ),
            )
    finally:
        database.dispose()
        for server in servers:
            server.stop()


def seed_tenants(database: Database, servers: list[OpenCodeServer]) -> None:
    """Three tenants with different concurrency limits, each with an agent on every server."""
    with unit_of_work(database) as uow:
        for slug, limit in TENANT_LIMITS.items():
            uow.tenants.add(
                Tenant(
                    slug=slug,
                    name=slug,
                    max_concurrent_sessions=limit,
                    monthly_token_budget=10**12,
                )
            )
    for slug in TENANT_LIMITS:
        with tenant_scope(slug), unit_of_work(database) as uow:
            for number, server in enumerate(servers, start=1):
                uow.agents.add(Agent(tenant_id=slug, name=f"agent-{number}", server_url=server.url))


def test_sessions_survive_every_fault_without_loss_duplicate_or_gap(
    chaos: Chaos, scripted_model: ScriptedModel
) -> None:
    started = time.monotonic()
    sampler = ConcurrencySampler(chaos.superuser_dsn, TENANT_LIMITS)
    sampler.start()
    try:
        chaos.submit_batch()
        # The first prompt installs the model provider's package into OpenCode's HOME (npm):
        # the faults start once sessions complete.
        wait_for(
            "the first session completed",
            lambda: chaos.completed() > 0,
            within=300,
            explain=chaos.explain,
        )
        faults: list[tuple[str, Callable[[], str]]] = [
            ("daemon", chaos.kill_daemon),
            ("run process", chaos.kill_run_process),
            ("code server", chaos.kill_code_server),
            ("agent server", chaos.kill_agent_server),
            ("redis", chaos.kill_redis),
            ("postgresql", chaos.restart_postgres),
        ]
        for name, action in faults:
            chaos.submit_batch()
            completed = chaos.completed()
            # Progress since the last fault (a session completed), then sessions running for the
            # fault to land on. Two waits, not one: a batch's sessions may all end within one
            # look, so "completed more and some running" could never be seen at once.
            wait_for(
                f"a session completed before the {name} fault",
                lambda: chaos.completed() > completed,  # noqa: B023
                within=240,
                every=0.5,
                explain=chaos.explain,
            )
            wait_for(
                f"sessions running for the {name} fault",
                chaos.busy,
                within=120,
                every=0.5,
                explain=chaos.explain,
            )
            chaos.inject(name, action)
            time.sleep(BETWEEN_FAULTS_SECONDS)
        faults_done = time.monotonic()

        def all_settled() -> bool:
            sessions = chaos.sessions()
            return all(session.settled for session in sessions)

        with contextlib.suppress(AssertionError):  # those not settled are counted as lost
            wait_for("every session settled", all_settled, within=SETTLE_SECONDS, every=2)
        settled_after = time.monotonic() - faults_done
    finally:
        sampler.stop()

    with psycopg.connect(chaos.superuser_dsn) as connection:
        sessions = read_sessions(connection)
        gaps = event_sequence_faults(connection)
    attempts = {session.marker: session.retry_count + 1 for session in sessions}
    duplicates = PromptDeliveries.from_requests(scripted_model.requests()).duplicates(attempts)
    lost = [f"{s.id} {s.tenant} {s.status}" for s in sessions if not s.settled]
    unexplained = [
        f"{s.id} {s.status}" for s in sessions if s.status != "COMPLETED" and not s.reason.strip()
    ]
    summary = {
        "sessions": len(sessions),
        "submitted": len(chaos.submitted),
        "completed": sum(1 for s in sessions if s.status == "COMPLETED"),
        "ended_otherwise_with_reason": {
            s.id: f"{s.status}: {s.reason}" for s in sessions if s.status != "COMPLETED"
        },
        "retries": sum(s.retry_count for s in sessions),
        "sessions_retried": sum(1 for s in sessions if s.retry_count),
        "faults": chaos.faults,
        "lost": len(lost),
        "lost_sessions": lost,
        "duplicate_prompts": len(duplicates),
        "duplicate_details": duplicates,
        "event_sequence_gaps": len(gaps),
        "gap_details": gaps,
        "concurrency": {
            tenant: {"max_observed": sampler.max_seen.get(tenant, 0), "limit": limit}
            for tenant, limit in TENANT_LIMITS.items()
        },
        "concurrency_samples": sampler.samples,
        "concurrency_samples_failed": sampler.failed_samples,
        "over_limit_samples": sampler.over_limit,
        "settled_seconds_after_last_fault": round(settled_after, 1),
        "total_seconds": round(time.monotonic() - started, 1),
    }
    print(json.dumps(summary, indent=2))
    report = os.environ.get("INDORCH_CHAOS_REPORT")
    if report:
        Path(report).parent.mkdir(parents=True, exist_ok=True)
        Path(report).write_text(json.dumps(summary, indent=2) + "\n")

    assert len(sessions) == len(chaos.submitted)
    assert lost == [], (
        f"sessions lost (not settled {SETTLE_SECONDS} s after the last fault)\n"
        + chaos.history([s.id for s in sessions if not s.settled])
        + "\n"
        + chaos.explain()
    )
    assert unexplained == [], "sessions that ended without saying why"
    assert duplicates == []
    assert gaps == []
    assert sampler.over_limit == []
    assert sampler.samples > 0
