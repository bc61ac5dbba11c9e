"""Managed runtimes for real: two tenants, each with its own OpenCode server (real OpenCode,
real OS users, real bubblewrap) started by the runtime manager on PostgreSQL, driven by the
scripted model.

Adversarial: tenant A's agent runs commands and reads files through a real session (OpenCode's
`bash` and `read` tools, every permission allowed, so only the sandbox stands in the way) and gets
nothing of B's files, no platform secret from its environment, no sight of the control plane's
processes; B's server refuses A's password. Then: a runtime that dies is restarted, an idle one
is stopped and started again when work comes, and the memory budget makes a third tenant wait
(queued, not failed).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from domain.agent import AgentStatus
from domain.caller import Caller
from domain.runtime import Runtime, RuntimeBudget, RuntimeSlotUnavailable, RuntimeStatus
from resources.database import Database, tenant_scope, unit_of_work
from resources.database.migrate import upgrade
from resources.opencode.control import agent_password
from resources.runtime_host import processes
from resources.runtime_host.host import RuntimeHost, RuntimeSettings
from resources.runtime_host.processes import ProcessHandle
from resources.secret_box import SECRET_KEY_VAR, SecretBox
from services.factory import ServiceFactory
from services.runtime_manager import RuntimeManager, runtime_wait
from services.session_service import SubmitSession
from standins.opencode_config import provider_config
from tests.integration.database.support import new_tenant
from tests.integration.runtime.conftest import start_runtimes

pytestmark = pytest.mark.timeout(600)

OPERATOR = Caller.operator()
SECRET = "b-private-91c4"
LEAKS = ("DATABASE_URL", "REDIS_URL", "INDORCH_", "postgresql://", "redis://")


@dataclass
class World:
    database: Database
    manager: RuntimeManager
    settings: RuntimeSettings
    box: SecretBox
    a: str
    b: str

    def runtime(self, tenant: str) -> Runtime:
        (runtime,) = self.manager.list(OPERATOR, tenant)
        return runtime

    def password(self, tenant: str) -> str:
        view = (
            ServiceFactory(self.database)
            .agents()
            .get(OPERATOR, tenant, self.runtime(tenant).agent_id or "")
        )
        password = agent_password(view.agent)
        assert password
        return password

    def manager_with(self, **changes: object) -> RuntimeManager:
        host = RuntimeHost(replace(self.settings, **changes))  # type: ignore[arg-type]
        return ServiceFactory(self.database).runtimes(host)


@pytest.fixture(scope="module")
def module_postgres(postgres_url: str) -> Iterator[str]:
    server = make_url(postgres_url)
    name = f"indorch_t_runtimes_{os.getpid()}"
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="module")
def world(
    module_postgres: str,
    module_runtime_root: Path,
    opencode_binary: Path,
    scripted_model_url: str,
) -> Iterator[World]:
    os.environ[SECRET_KEY_VAR] = Fernet.generate_key().decode()
    os.environ["DATABASE_URL"] = "postgresql://platform:leak@db/indorch"  # must not reach A
    os.environ["INDORCH_LEAK_CANARY"] = "leak"
    upgrade(module_postgres)
    database = Database(module_postgres)
    config = provider_config(scripted_model_url)
    # Every permission granted: only the sandbox stands between A's agent and B's files.
    config["permission"] = {"bash": "allow", "edit": "allow", "external_directory": "allow"}
    settings = RuntimeSettings(
        root=module_runtime_root,
        budget=RuntimeBudget(memory_mb=700, runtime_mb=300),  # two idle ones, not three
        idle_seconds=3600,
        opencode_config_json=json.dumps(config),
    )
    host = RuntimeHost(settings)
    manager = ServiceFactory(database).runtimes(host)
    a, b = new_tenant(database, "a"), new_tenant(database, "b")
    try:
        start_runtimes(manager, host, (a, b))
        world = World(database, manager, settings, SecretBox([os.environ[SECRET_KEY_VAR]]), a, b)
        home_b = module_runtime_root / b / "home"
        (home_b / "secret.txt").write_text(SECRET)
        os.chown(home_b / "secret.txt", home_b.stat().st_uid, home_b.stat().st_gid)
        yield world
    finally:
        for runtime in manager.list(OPERATOR):
            if runtime.pid and runtime.process_start:
                processes.stop(ProcessHandle(runtime.pid, runtime.process_start))
        database.dispose()
        for name in (SECRET_KEY_VAR, "DATABASE_URL", "INDORCH_LEAK_CANARY"):
            os.environ.pop(name, None)


def run_bash(world: World, tenant: str, command: str) -> str:
    """A real session on the tenant's server: the scripted model has OpenCode's bash tool run
    `command`; answers the tool's output."""
    marker = json.dumps(command)  # a quoted script value: \" and \\ escapes
    return run_tool(world, tenant, f"[script:bash command={marker} reply=Ran.]")


def run_read(world: World, tenant: str, path: Path) -> str:
    """A real session on the tenant's server: the scripted model has OpenCode's `read` tool
    read `path`; answers the tool's output (or its error)."""
    return run_tool(world, tenant, f"[script:read path={json.dumps(str(path))} reply=Read.]")


def run_tool(world: World, tenant: str, prompt: str) -> str:
    """A real session on the tenant's server prompted with `prompt` (one scripted tool call);
    the tool's output, or its error."""
    runtime = world.runtime(tenant)
    auth = ("opencode", world.password(tenant))
    directory = str(world.settings.root / tenant / "workspaces")
    with httpx.Client(base_url=runtime.server_url or "", auth=auth, timeout=30) as client:
        params = {"directory": directory}
        session = client.post("/session", params=params, json={}).json()
        client.post(
            f"/session/{session['id']}/prompt_async",
            params=params,
            json={"parts": [{"type": "text", "text": prompt}]},
        ).raise_for_status()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            messages = client.get(f"/session/{session['id']}/message", params=params).json()
            for message in messages:
                for part in message["parts"]:
                    state = part.get("state") or {}
                    if part.get("type") == "tool" and state.get("status") in ("completed", "error"):
                        return str(state.get("output") or state.get("error") or "")
            time.sleep(0.1)
    raise AssertionError(f"the tool did not finish: {messages}")


def test_each_tenant_runs_its_own_sandboxed_server_as_its_agent(world: World) -> None:
    for tenant in (world.a, world.b):
        runtime = world.runtime(tenant)
        assert runtime.status is RuntimeStatus.LIVE and runtime.sandboxed
        agent = (
            ServiceFactory(world.database).agents().get(OPERATOR, tenant, runtime.agent_id or "")
        )
        assert agent.agent.password_env is None and agent.agent.password_sealed
        assert agent.agent.server_url == runtime.server_url
        response = httpx.get(
            f"{runtime.server_url}/global/health", auth=("opencode", world.password(tenant))
        )
        assert response.status_code == 200
    assert world.password(world.a) != world.password(world.b)


def test_the_password_is_in_no_command_line(world: World) -> None:
    passwords = [world.password(world.a), world.password(world.b)]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            assert not any(password in cmdline for password in passwords), entry


PROBE_CONNECT = (  # "host:port ..." -> "host:port CONNECTED|refused" each (no newline: bash -c)
    "import socket, sys; socket.setdefaulttimeout(5); "
    '[print(t, "CONNECTED" if socket.socket('
    'socket.AF_INET6 if t.count(":") > 1 else socket.AF_INET'
    ').connect_ex((t.rsplit(":", 1)[0], int(t.rsplit(":", 1)[1]))) == 0 '
    'else "refused") for t in sys.argv[1:]]'
)


def test_the_agent_cannot_reach_the_platforms_services_on_the_loopback(
    world: World, scripted_model_url: str
) -> None:
    """A's agent (bash, every permission allowed) connects to PostgreSQL and Redis on the
    loopback (v4 and v6) and to B's server: every one refused by the host's firewall rules for
    A's OS user; the model provider its config names stays reachable (its server answers)."""
    model = httpx.URL(scripted_model_url)
    b_port = world.runtime(world.b).port
    targets = ["127.0.0.1:5432", "127.0.0.1:6379", "::1:6379", f"127.0.0.1:{b_port}"]
    targets.append(f"{model.host}:{model.port}")
    output = run_bash(
        world, world.a, f"python3 -c '{PROBE_CONNECT}' {' '.join(targets)}; echo probe-end"
    )
    assert "probe-end" in output, output
    for target in targets[:-1]:
        assert f"{target} refused" in output, output
    assert f"{targets[-1]} CONNECTED" in output, output
    # The control plane (not the tenant's user) still reaches them.
    with socket.create_connection(("127.0.0.1", 5432), timeout=5):
        pass


def test_the_server_runs_as_the_tenants_user(world: World) -> None:
    """Everything below the root-owned holder (`setsid --wait`, which only waits) is the
    tenant's user: bwrap, its init, the server and whatever the server starts."""
    runtime = world.runtime(world.a)
    assert runtime.pid
    _holder, *sandboxed = processes.process_tree(runtime.pid)
    assert len(sandboxed) >= 2  # bwrap and opencode at least
    uids = {Path(f"/proc/{pid}").stat().st_uid for pid in sandboxed}
    home = world.settings.root / world.a / "home"
    assert uids == {home.stat().st_uid} and 0 not in uids


def test_bs_server_refuses_as_password(world: World) -> None:
    url = world.runtime(world.b).server_url
    for auth in (("opencode", world.password(world.a)), None):
        response = httpx.get(f"{url}/session", auth=auth)
        assert response.status_code == 401


def test_as_agent_cannot_even_connect_to_bs_server(world: World) -> None:
    """From inside A's sandbox B's server is not reachable (A's user's firewall rules refuse
    the loopback); were it reachable, it would refuse A's own password, the only one A's
    environment holds (`test_bs_server_refuses_as_password`)."""
    b_url = world.runtime(world.b).server_url
    probe = world.settings.root / world.a / "workspaces" / "probe.py"
    probe.write_text(
        "import base64, os, urllib.error, urllib.request\n"
        "secret = 'opencode:' + os.environ['OPENCODE_SERVER_PASSWORD']\n"
        "token = base64.b64encode(secret.encode()).decode()\n"
        f"request = urllib.request.Request('{b_url}/session')\n"
        "request.add_header('Authorization', 'Basic ' + token)\n"
        "try:\n"
        "    print('STATUS', urllib.request.urlopen(request).status)\n"
        "except urllib.error.HTTPError as error:\n"
        "    print('STATUS', error.code)\n"
        "except urllib.error.URLError as error:\n"
        "    print('UNREACHABLE', error.reason)\n"
    )
    probe.chmod(0o644)
    output = run_bash(world, world.a, f"python3 {probe}")
    assert "UNREACHABLE [Errno 111] Connection refused" in output, output
    assert "STATUS" not in output, output


def test_as_agent_cannot_read_bs_files(world: World) -> None:
    b_dir = world.settings.root / world.b
    a_dir = world.settings.root / world.a
    output = run_bash(
        world,
        world.a,
        f"echo a-own-file > {a_dir}/workspaces/own.txt; cat {a_dir}/workspaces/own.txt; "
        f"cat {b_dir}/home/secret.txt; "
        f"python3 -c \"print(open('{b_dir}/home/secret.txt').read())\"; "
        f"ls -la {b_dir} {b_dir}/home {b_dir}/workspaces; echo END",
    )
    print(output)
    assert "a-own-file" in output and "END" in output  # the route works: A reads its own
    assert SECRET not in output
    assert "No such file" in output or "Permission denied" in output


def test_as_agent_cannot_read_bs_files_with_the_read_tool(world: World) -> None:
    """OpenCode's own `read` tool (not a shell): A's agent reads its own file, then B's file
    and B's directories (every permission allowed): an error each time, nothing of B's."""
    a_dir, b_dir = world.settings.root / world.a, world.settings.root / world.b
    own = a_dir / "workspaces" / "own-read.txt"
    own.write_text("a-own-read-file\n")
    home_a = (a_dir / "home").stat()
    os.chown(own, home_a.st_uid, home_a.st_gid)
    own.chmod(0o600)
    mine = run_read(world, world.a, own)
    assert "a-own-read-file" in mine, mine  # the probe works: A's read tool reads A's file
    (b_own := b_dir / "workspaces" / "b-work.txt").write_text(SECRET)
    home_b = (b_dir / "home").stat()
    os.chown(b_own, home_b.st_uid, home_b.st_gid)
    for target in (b_dir / "home" / "secret.txt", b_own, b_dir / "home", b_dir / "workspaces"):
        output = run_read(world, world.a, target)
        print(target, output)
        beyond_the_path = output.replace(str(target), "")  # its error names the path asked
        assert SECRET not in output, output
        assert "b-work.txt" not in beyond_the_path and "secret.txt" not in beyond_the_path, output
        assert "not found" in output.lower() or "permission denied" in output.lower(), output


def test_as_agent_sees_no_platform_secret_and_no_control_plane(world: World) -> None:
    output = run_bash(world, world.a, "env; echo ---; ls /proc; echo ---; ps -eo user,pid,cmd")
    print(output)
    environment, proc, ps = output.split("---")
    for leak in LEAKS:
        assert leak not in environment, leak
    assert world.password(world.b) not in output
    pids = [entry for entry in proc.split() if entry.isdigit()]
    assert len(pids) < 20, pids
    assert "root" not in ps and "pytest" not in ps and "postgres" not in ps


def test_a_dead_runtime_is_restarted(world: World) -> None:
    before = world.runtime(world.a)
    old_password = world.password(world.a)
    assert before.pid and before.process_start
    server = processes.process_tree(before.pid)[-1]  # opencode itself, inside the sandbox
    os.kill(server, signal.SIGKILL)  # the server crashes; the sandbox around it ends
    deadline = time.monotonic() + 10
    while processes.is_alive(ProcessHandle(before.pid, before.process_start)):
        assert time.monotonic() < deadline, "the sandbox outlived its server"
        time.sleep(0.2)
    report = world.manager.reconcile(OPERATOR)
    assert world.a in report.restarted, report
    after = world.runtime(world.a)
    assert after.status is RuntimeStatus.LIVE and after.pid != before.pid
    assert after.restarts == before.restarts + 1
    assert world.password(world.a) != old_password
    response = httpx.get(
        f"{after.server_url}/global/health", auth=("opencode", world.password(world.a))
    )
    assert response.status_code == 200
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{before.server_url}/global/health", timeout=2)


def test_the_budget_makes_a_third_tenant_wait_then_idle_stops_free_its_slot(world: World) -> None:
    c = new_tenant(world.database, "c")
    with pytest.raises(RuntimeSlotUnavailable):
        world.manager.start(OPERATOR, c)
    waiting = world.runtime(c)
    assert waiting.status is RuntimeStatus.WAITING_FOR_SLOT
    assert "waiting for a runtime slot" in (runtime_wait(world.database, OPERATOR, c) or "")
    ServiceFactory(world.database).sessions().submit(
        Caller.operator(), c, SubmitSession(title="t", prompt="p")
    )

    idle_now = world.manager_with(idle_seconds=0)
    with tenant_scope(world.b), unit_of_work(world.database) as uow:
        assert uow.sessions.count_active() == 0  # B has no work: it is idle
    report = idle_now.reconcile(OPERATOR)
    assert world.b in report.stopped_idle and world.a in report.stopped_idle, report
    assert c in report.started, report
    assert world.runtime(world.b).status is RuntimeStatus.STOPPED
    agent_b = world.runtime(world.b).agent_id or ""
    assert (
        ServiceFactory(world.database).agents().get(OPERATOR, world.b, agent_b).agent.status
        is AgentStatus.INACTIVE
    )
    assert world.runtime(c).status is RuntimeStatus.LIVE
    assert runtime_wait(world.database, OPERATOR, c) is None


def test_deleting_a_tenant_stops_its_runtime_and_removes_its_runtime_directories(
    world: World,
) -> None:
    manager = world.manager_with(budget=RuntimeBudget(memory_mb=10_000, runtime_mb=300))
    doomed = new_tenant(world.database, "gone")
    manager.start(OPERATOR, doomed)
    (runtime,) = manager.list(OPERATOR, doomed)
    assert runtime.pid and runtime.process_start
    handle = ProcessHandle(runtime.pid, runtime.process_start)
    assert processes.is_alive(handle)
    tenant_dir = world.settings.root / doomed
    left = tenant_dir / "workspaces" / "sessions" / "IND-LEFT" / "work.txt"
    left.parent.mkdir(parents=True)
    left.write_text("the tenant's code")
    assert (tenant_dir / "home").is_dir()

    deletion = ServiceFactory(world.database).tenants(runtimes=manager).delete(OPERATOR, doomed)

    deadline = time.monotonic() + 15
    while processes.is_alive(handle):
        assert time.monotonic() < deadline, "a deleted tenant's runtime kept running"
        time.sleep(0.2)
    assert deletion.runtime_stopped
    assert deletion.runtime_removed == [str(tenant_dir)]  # said so (the CLI prints it)
    assert not tenant_dir.exists()  # HOME, workspaces, log: all gone
    # The other tenants' directories stay.
    for other in (world.a, world.b):
        assert (world.settings.root / other / "home").is_dir()
        assert (world.settings.root / other / "workspaces").is_dir()
