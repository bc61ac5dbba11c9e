"""Coding sessions end to end: the dispatch and retry sensors, the `session_wave` job run with
`execute_in_process`, two real OpenCode servers and the scripted model, a real SQLite database.

Contract: a session that writes a file completes with its diff, tokens and cost recorded and its
tenant's `coding_sessions` partition materialized; a model failing once, a hang and a killed
agent server each end in a retry that completes; a killed wave's session is adopted without a
second agent session.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import httpx
import pytest

from domain.agent import Agent
from domain.caller import Caller
from domain.ids import new_agent_id
from domain.session import Session, SessionStatus
from domain.supervision_policy import SupervisionSettings
from domain.tenant import Tenant
from orchestrator_defs.sensor_evaluation import sensor_context
from orchestrator_defs.sessions.job import session_wave
from resources.database import Database, tenant_scope, unit_of_work
from resources.database_resource import DatabaseResource
from resources.opencode.resource import OpenCodeResource
from resources.redis.live_events import RedisEventReader
from resources.redis.resource import RedisResource
from resources.supervision_config import SupervisionConfig
from sensors.dispatch import dispatch_sensor
from sensors.retry import retry_sensor
from sensors.settlement import settlement_sensor
from services.session_outcome import SessionOutcome
from services.session_service import SessionService, SubmitSession
from services.supervision.wave import WaveSupervisor
from services.tenant_workspaces import remove_tenant_workspaces
from services.top_up import TopUp, claim_next_for
from standins.opencode_server import OpenCodeServer
from standins.scripted_model import ScriptedModel

TENANT = "acme"
FINAL = {"COMPLETED", "PARTIALLY_COMPLETED", "STOPPED", "CANCELLED"}
SUPERVISION_FIELDS: dict[str, float] = {
    "wave_size": 10,
    "poll_seconds": 0.3,
    "orphan_after_seconds": 2.0,
    "renew_every_seconds": 2.0,
    "lease_seconds": 10.0,
    "retry_base_seconds": 0.2,
    "top_up_every_seconds": 0.2,
    "linger_seconds": 0.5,  # waves top up while they run, and end soon after (tests wait on them)
}
SUPERVISION = SupervisionConfig(**SUPERVISION_FIELDS)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def servers(
    opencode_binary: Path, opencode_home: Path, scripted_model_url: str
) -> Iterator[list[OpenCodeServer]]:
    started: list[OpenCodeServer] = []
    try:
        for _ in range(2):
            started.append(
                OpenCodeServer(scripted_model_url, home=opencode_home, binary=opencode_binary)
            )
        for server in started:  # in turn: two first starts on one new HOME lock its database
            server.start()
        yield started
    finally:
        # Stopped together: each waits out its SIGTERM grace (`TERM_GRACE_SECONDS`).
        with ThreadPoolExecutor(len(started) or 1) as pool:
            list(pool.map(OpenCodeServer.stop, started))


@pytest.fixture(scope="module")
def agent_ids(servers: list[OpenCodeServer]) -> list[str]:
    """One agent id per server, the same in every test of the module (each test's database is
    new): a session's scratch slot is named from its agent's id, so the tests' sessions reuse
    the slots earlier tests left warm on the module's servers, the steady state slots are made
    for, instead of each paying its server a new instance (several CPU-seconds)."""
    return [new_agent_id() for _ in servers]


@pytest.fixture(scope="module")
def workspaces_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the module's sessions get their scratch slots (`INDORCH_WORKSPACES_DIR`): kept
    across its tests with the servers. A claim a test left (its wave did not release the slot)
    names a session the next test's new database does not have: the slot is taken back."""
    return tmp_path_factory.mktemp("workspaces")


@dataclass
class World:
    url: str
    database: Database
    service: SessionService
    agents: list[Agent]
    instance: dg.DagsterInstance

    def submit(self, prompt: str, **fields: object) -> str:
        request = SubmitSession(title=prompt[-60:], prompt=prompt, **fields)
        return self.service.submit(Caller.operator(), TENANT, request).id

    def session(self, session_id: str) -> Session:
        return self.service.get(Caller.operator(), TENANT, session_id)

    redis_url: str | None = None
    supervision: SupervisionConfig = field(default_factory=lambda: SUPERVISION)

    def resources(self) -> dict[str, object]:
        return {
            "database": DatabaseResource(url=self.url),
            "opencode": OpenCodeResource(),
            "supervision": self.supervision,
            "redis": RedisResource(url=self.redis_url),
        }


@pytest.fixture
def world(
    servers: list[OpenCodeServer],
    agent_ids: list[str],
    workspaces_dir: Path,
    migrated_sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[World]:
    # Sessions get scratch workspaces of their own (the default): slots of the module's.
    monkeypatch.setenv("INDORCH_WORKSPACES_DIR", str(workspaces_dir))
    url = migrated_sqlite_url  # the run's migrated template, copied: no migration per test
    database = Database(url)
    with unit_of_work(database) as uow:
        uow.tenants.add(Tenant(slug=TENANT, name="Acme"))
    agents = []
    with tenant_scope(TENANT), unit_of_work(database) as uow:
        for number, (server, agent_id) in enumerate(zip(servers, agent_ids, strict=True), 1):
            agents.append(
                uow.agents.add(
                    Agent(
                        id=agent_id,
                        tenant_id=TENANT,
                        name=f"agent-{number}",
                        server_url=server.url,
                    )
                )
            )
    try:
        with dg.instance_for_test() as instance:
            instance.add_dynamic_partitions("tenants", [TENANT])
            yield World(url, database, SessionService(database), agents, instance)
    finally:
        remove_worktrees(database)
        database.dispose()


def remove_worktrees(database: Database) -> None:
    """The servers outlive the test, its database does not: the worktrees it recorded go, so
    the next test's tenant gets `tenant-<slug>` again (the name of a worktree left over would
    be taken) and the servers do not pile up worktrees."""
    with unit_of_work(database) as uow:
        slugs = [tenant.slug for tenant in uow.tenants.list()]
    for slug in slugs:
        asyncio.run(remove_tenant_workspaces(database, slug))


def tick(world: World) -> int:
    """One retry, settlement and dispatch tick each; every requested wave runs to its end
    in-process."""
    resources = world.resources()
    for sensor in (retry_sensor, settlement_sensor):
        with sensor_context(world.instance, resources) as context:
            sensor.evaluate_tick(context)
    with sensor_context(world.instance, resources) as context:
        requests = dispatch_sensor.evaluate_tick(context).run_requests or []
    for request in requests:
        result = session_wave.execute_in_process(
            run_config=request.run_config,
            resources=resources,
            instance=world.instance,
            tags=request.tags,
        )
        assert result.success
    return len(requests)


def run_until_final(world: World, session_id: str, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if world.session(session_id).status.value in FINAL:
            return
        if tick(world) == 0:
            time.sleep(0.3)
    if world.session(session_id).status.value in FINAL:  # ended in the last tick's wave
        return
    history = [
        (e.event_type, e.new_status, e.reason, e.data)
        for e in world.service.events(Caller.operator(), TENANT, session_id)
    ]
    raise AssertionError(
        f"{session_id} still {world.session(session_id).status} after {seconds}s: {history}"
    )


def statuses(world: World, session_id: str) -> list[str]:
    return [
        event.new_status
        for event in world.service.events(Caller.operator(), TENANT, session_id)
        if event.new_status is not None
    ]


def test_a_session_that_writes_a_file_completes_with_diff_tokens_and_cost(world: World) -> None:
    session_id = world.submit('[script:write path=docs/hello.md content="# Hello\\n"] Write it.')
    run_until_final(world, session_id)

    session = world.session(session_id)
    assert session.status is SessionStatus.COMPLETED
    assert session.result is not None
    assert session.result["files"] == [
        {"file": "docs/hello.md", "status": "added", "additions": 1, "deletions": 0}
    ]
    assert session.metrics.tokens_in > 0 and session.metrics.cost_usd > 0
    assert statuses(world, session_id) == ["PENDING", "QUEUED", "RUNNING", "COMPLETED"]
    with tenant_scope(TENANT), unit_of_work(world.database) as uow:
        usage = uow.usage.between(session.created_at.date(), datetime.now(UTC).date())
    assert sum(day.tokens_in for day in usage) == session.metrics.tokens_in
    materialization = world.instance.get_latest_materialization_event(
        dg.AssetKey("coding_sessions")
    )
    assert materialization is not None
    assert materialization.dagster_event.partition == TENANT
    metadata = materialization.asset_materialization.metadata
    assert metadata["session_id"].value == session_id
    assert metadata["files_changed"].value == 1
    # An operator finds the session's run by its tags, and its outcome in that run's log.
    run_id = materialization.run_id
    run = world.instance.get_run_by_id(run_id)
    assert run is not None and run.tags["tenant"] == TENANT
    assert session_id in run.tags["indorch/sessions"]
    messages = [entry.user_message for entry in world.instance.all_logs(run_id)]
    assert any(
        TENANT in message and f"{session_id} COMPLETED" in message for message in messages
    ), messages


def test_a_model_failing_once_fails_is_retried_and_completes(world: World) -> None:
    session_id = world.submit("[script:fail-401 attempts=1] Refactor the parser.")
    run_until_final(world, session_id)

    session = world.session(session_id)
    assert session.status is SessionStatus.COMPLETED
    assert session.retry_count == 1
    assert statuses(world, session_id) == [
        "PENDING",
        "QUEUED",
        "RUNNING",
        "FAILED",
        "PENDING",
        "QUEUED",
        "RUNNING",
        "COMPLETED",
    ]


def test_a_dagster_launch_with_tenant_and_prompt_runs_one_session(world: World) -> None:
    result = session_wave.execute_in_process(
        run_config={
            "ops": {"supervise_wave": {"config": {"tenant": TENANT, "prompt": "Say hello."}}}
        },
        resources=world.resources(),
        instance=world.instance,
    )
    assert result.success
    [session] = world.service.list(Caller.operator(), TENANT)
    assert session.status is SessionStatus.COMPLETED
    assert session.title == "Say hello."


def launch_one(world: World, prompt: str) -> Session:
    result = session_wave.execute_in_process(
        run_config={"ops": {"supervise_wave": {"config": {"tenant": TENANT, "prompt": prompt}}}},
        resources=world.resources(),
        instance=world.instance,
    )
    assert result.success
    return next(
        s for s in world.service.list(Caller.operator(), TENANT) if s.initial_prompt == prompt
    )


def test_live_events_reach_the_tenants_redis_stream(world: World, redis_url: str) -> None:
    world.redis_url = redis_url
    reader = RedisEventReader(redis_url)
    session = launch_one(world, "Live events, please.")
    assert session.status is SessionStatus.COMPLETED
    streamed = reader.read_session_events(TENANT, session.id, count=1000)
    stored = world.service.events(Caller.operator(), TENANT, session.id)
    assert [entry.event.seq for entry in streamed] == [event.seq for event in stored]


def test_the_live_stream_carries_what_the_agent_said_with_its_secrets_scrubbed(
    world: World, redis_url: str
) -> None:
    world.redis_url = redis_url
    token = "ghp_" + "Z9y8X7w6V5" * 4
    session = launch_one(world, f'[script:text reply="Deployed with {token} as asked."] Deploy.')
    assert session.status is SessionStatus.COMPLETED
    streamed = RedisEventReader(redis_url).read_session_events(TENANT, session.id, count=1000)
    steps = [entry.event for entry in streamed if entry.event.event_type == "agent.step"]
    assert [step.data["text"] for step in steps] == [
        "Deployed with [REDACTED:github_token] as asked."
    ]


def test_waves_carry_on_from_the_database_when_redis_is_down(world: World) -> None:
    world.redis_url = "redis://127.0.0.1:1/0"  # nothing listens there
    session = launch_one(world, "Redis is down, carry on.")
    assert session.status is SessionStatus.COMPLETED
    assert [
        e.new_status
        for e in world.service.events(Caller.operator(), TENANT, session.id)
        if e.new_status
    ][-1] == "COMPLETED"


def accelerated_clock(factor: float) -> Callable[[], datetime]:
    """Session time running `factor` times faster than the wall clock, from now."""
    origin_wall, origin = time.monotonic(), datetime.now(UTC)
    return lambda: origin + timedelta(seconds=(time.monotonic() - origin_wall) * factor)


def claim_all(world: World, owner: str) -> list[str]:
    claim = world.service.claim_pending(TENANT, 100, timedelta(seconds=60), lambda s: owner)
    return [session.id for session in claim.sessions]


async def start_wave(
    world: World,
    owner: str,
    ids: list[str],
    settings: SupervisionSettings,
    running: str,
    top_up: TopUp | None = None,
) -> asyncio.Task[list[SessionOutcome]]:
    """A wave supervising `ids` in the background, once session `running` is RUNNING."""
    supervisor = WaveSupervisor(
        world.database, OpenCodeResource(), tenant=TENANT, owner=owner, settings=settings
    )
    task = asyncio.create_task(supervisor.run(ids, top_up=top_up))
    while world.session(running).status is not SessionStatus.RUNNING:
        await asyncio.sleep(0.1)
    return task


def test_a_wave_takes_on_its_tenants_new_sessions_while_it_runs(world: World) -> None:
    """A session submitted while a wave runs joins that wave (no new run), completes there, and
    the wave ends once it has had nothing to do for its linger time."""
    first = world.submit("[script:slow seconds=2] First.")
    ids = claim_all(world, "wave-long")
    top_up = TopUp(
        claim=claim_next_for(world.service, TENANT, "wave-long", timedelta(seconds=60)),
        size=10,
        until=datetime.now(UTC) + timedelta(hours=2),  # room for the default 1 h sessions
        every_seconds=0.2,
        linger_seconds=1.0,
    )
    settings = SupervisionSettings(poll_seconds=0.2)

    async def submit_while_running() -> tuple[str, list[SessionOutcome]]:
        task = await start_wave(world, "wave-long", ids, settings, running=first, top_up=top_up)
        second = world.submit('[script:write path=joined.md content="joined"] Second.')
        return second, await asyncio.wait_for(task, timeout=60)

    second, outcomes = asyncio.run(submit_while_running())

    assert {o.session_id: o.status for o in outcomes} == {
        first: "COMPLETED",
        second: "COMPLETED",
    }
    claimed = [
        e
        for e in world.service.events(Caller.operator(), TENANT, second)
        if e.new_status == "QUEUED"
    ]
    assert len(claimed) == 1 and "wave-long" in claimed[0].reason


def test_tenants_sharing_an_agent_server_work_in_workspaces_of_their_own(
    world: World, servers: list[OpenCodeServer]
) -> None:
    """With `session_workspaces` off, two tenants' agents on the same OpenCode server: each
    tenant's sessions run in a git worktree of that tenant's; neither the server's own
    workspace nor the other tenant's worktree gets the file."""
    other = "globex"
    with unit_of_work(world.database) as uow:
        uow.tenants.add(Tenant(slug=other, name="Globex"))
    with tenant_scope(other), unit_of_work(world.database) as uow:
        uow.agents.add(Agent(tenant_id=other, name="shared", server_url=servers[0].url))
    ours = world.submit('[script:write path=secret.md content="acme only"] Write it.')
    theirs = world.service.submit(
        Caller.operator(),
        other,
        SubmitSession(title="theirs", prompt='[script:write path=own.md content="g"] Go.'),
    ).id

    for tenant, session_id in ((TENANT, ours), (other, theirs)):
        owner = f"wave-{tenant}"
        claim = world.service.claim_pending(tenant, 10, timedelta(seconds=60), lambda s, o=owner: o)
        assert [s.id for s in claim.sessions] == [session_id]
        supervisor = WaveSupervisor(
            world.database,
            OpenCodeResource(),
            tenant=tenant,
            owner=owner,
            settings=SupervisionSettings(session_workspaces=False),
        )
        outcomes = asyncio.run(supervisor.run([session_id]))
        assert [(o.status, o.files_changed) for o in outcomes] == [("COMPLETED", 1)]

    acme_dir = Path(world.session(ours).metadata["agent_directory"])
    globex_dir = Path(
        world.service.get(Caller.operator(), other, theirs).metadata["agent_directory"]
    )
    assert acme_dir != globex_dir
    assert acme_dir.name.startswith(f"tenant-{TENANT}-")
    assert globex_dir.name.startswith(f"tenant-{other}-")
    assert (acme_dir / "secret.md").read_text() == "acme only"
    assert not (globex_dir / "secret.md").exists()
    assert all(not (server.workspace / "secret.md").exists() for server in servers)


def test_a_hang_times_out_and_the_retry_completes(world: World) -> None:
    session_id = world.submit("[script:hang attempts=1] Think hard.", max_duration_seconds=60)
    ids = claim_all(world, "wave-hang")
    supervisor = WaveSupervisor(
        world.database,
        OpenCodeResource(),
        tenant=TENANT,
        owner="wave-hang",
        settings=SupervisionSettings(poll_seconds=0.3),
        clock=accelerated_clock(30.0),  # the 60 s deadline passes in about 2 s
    )
    [outcome] = asyncio.run(supervisor.run(ids))
    assert outcome.status == "TIMEOUT"
    assert "max duration of 60 s" in world.session(session_id).status_reason

    run_until_final(world, session_id)
    assert world.session(session_id).status is SessionStatus.COMPLETED
    assert statuses(world, session_id)[:5] == ["PENDING", "QUEUED", "RUNNING", "TIMEOUT", "PENDING"]


def agent_sessions_titled(server: OpenCodeServer, prefix: str) -> int:
    sessions = httpx.get(f"{server.url}/session", timeout=10).json()
    return sum(1 for item in sessions if str(item.get("title", "")).startswith(prefix))


def test_a_killed_wave_is_adopted_without_a_second_agent_session(
    world: World, servers: list[OpenCodeServer]
) -> None:
    # In the tenant's worktree, so the server's session list (of the worktree's project) counts
    # its agent sessions afterwards (a scratch workspace's goes with its directory).
    world.supervision = SupervisionConfig(**SUPERVISION_FIELDS, session_workspaces=False)  # type: ignore[arg-type]
    session_id = world.submit("[script:slow seconds=4] Take your time.")
    ids = claim_all(world, "wave-doomed")

    async def die_mid_session() -> None:
        settings = SupervisionSettings(
            poll_seconds=0.3, lease=timedelta(seconds=30), session_workspaces=False
        )
        task = await start_wave(world, "wave-doomed", ids, settings, running=session_id)
        await asyncio.sleep(0.5)
        task.cancel()  # the run dies: no final state, a lease that is still valid
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(die_mid_session())
    assert world.session(session_id).status is SessionStatus.RUNNING
    assert tick(world) == 0  # its lease still runs: nobody adopts it yet

    released = world.service.release_leases(TENANT, "wave-doomed")  # the run-failure sensor
    assert [s.id for s in released] == [session_id]
    run_until_final(world, session_id)

    session = world.session(session_id)
    assert session.status is SessionStatus.COMPLETED
    assert session.retry_count == 0
    assert sum(agent_sessions_titled(server, session_id) for server in servers) == 1
    assert "session.adopted" in [
        event.event_type for event in world.service.events(Caller.operator(), TENANT, session_id)
    ]


def test_a_wave_keeps_the_leases_of_sessions_that_outlive_them(world: World) -> None:
    """A 2 s lease renewed every 0.5 s by the wave, a 5 s session: meanwhile the dispatcher
    finds nothing unsupervised to adopt, and the session completes on its one agent session."""
    session_id = world.submit("[script:slow seconds=5] Take your time.")
    ids = claim_all(world, "wave-steady")
    settings = SupervisionSettings(
        poll_seconds=0.3, lease=timedelta(seconds=2), renew_every=timedelta(seconds=0.5)
    )
    adopted_meanwhile: list[int] = []

    async def supervise_and_probe() -> list[str]:
        task = await start_wave(world, "wave-steady", ids, settings, running=session_id)
        for _ in range(3):  # well past the first lease's expiry
            await asyncio.sleep(1.0)
            leased = world.service.lease_unsupervised(
                TENANT, 10, timedelta(seconds=30), lambda sessions: "wave-intruder"
            )
            adopted_meanwhile.append(len(leased.sessions))
        outcomes = await task
        return [outcome.status for outcome in outcomes]

    assert asyncio.run(supervise_and_probe()) == ["COMPLETED"]
    assert adopted_meanwhile == [0, 0, 0]
    assert world.session(session_id).lease_owner is None


def test_a_session_taken_over_is_let_go_by_its_old_wave(world: World) -> None:
    """Another wave took the lease (its renewal found the first wave gone): the first wave's
    next renewal does not hold the session, so it stops following it and records nothing."""
    session_id = world.submit("[script:slow seconds=10] Take your time.")
    ids = claim_all(world, "wave-old")
    settings = SupervisionSettings(
        poll_seconds=0.2, lease=timedelta(seconds=30), renew_every=timedelta(seconds=0.5)
    )

    async def take_over_mid_session() -> list[str]:
        task = await start_wave(world, "wave-old", ids, settings, running=session_id)
        with tenant_scope(TENANT), unit_of_work(world.database) as uow:
            session = uow.sessions.get(session_id)
            session.lease_owner = "wave-new"
            uow.sessions.save(session)
        outcomes = await asyncio.wait_for(task, timeout=8.0)  # before the session ends (10 s)
        return [f"{outcome.status}: {outcome.reason}" for outcome in outcomes]

    assert asyncio.run(take_over_mid_session()) == ["RUNNING: taken over: RUNNING"]
    session = world.session(session_id)
    assert (session.status, session.lease_owner) == (SessionStatus.RUNNING, "wave-new")


def test_a_killed_agent_server_orphans_the_session_and_the_retry_runs_elsewhere(
    tmp_path: Path,
    opencode_binary: Path,
    opencode_home: Path,
    scripted_model_url: str,
    scripted_model: ScriptedModel,
    world: World,
) -> None:
    doomed = OpenCodeServer(scripted_model_url, home=opencode_home, binary=opencode_binary).start()
    try:
        with tenant_scope(TENANT), unit_of_work(world.database) as uow:
            for agent in uow.agents.list():  # only the doomed server takes the first attempt
                agent.active = False
                uow.agents.save(agent)
            doomed_agent = uow.agents.add(
                Agent(tenant_id=TENANT, name="doomed", server_url=doomed.url)
            )
        session_id = world.submit("[script:hang attempts=1] A long one.")
        ids = claim_all(world, "wave-orphan")

        async def kill_mid_session() -> list:
            supervisor = WaveSupervisor(
                world.database,
                OpenCodeResource(),
                tenant=TENANT,
                owner="wave-orphan",
                settings=SupervisionSettings(poll_seconds=0.3, orphan_after_seconds=1.0),
            )
            task = asyncio.create_task(supervisor.run(ids))
            while not any(  # the model holds the agent's request: the session is mid-turn
                request["script"] == "hang" and "A long one." in str(request["body"])
                for request in scripted_model.requests()
            ):
                await asyncio.sleep(0.1)
            doomed.kill()
            return await task

        [outcome] = asyncio.run(kill_mid_session())
        assert outcome.status == "ORPHANED"
    finally:
        doomed.stop()
    with tenant_scope(TENANT), unit_of_work(world.database) as uow:
        for agent in uow.agents.list():
            agent.active = agent.id != doomed_agent.id
            uow.agents.save(agent)

    run_until_final(world, session_id, seconds=40)
    session = world.session(session_id)
    assert session.status is SessionStatus.COMPLETED
    assert session.agent_id in {agent.id for agent in world.agents}
    assert statuses(world, session_id)[3:5] == ["ORPHANED", "PENDING"]
