"""`dagster job launch` of `session_wave` with a config naming a tenant and a prompt, as the README
documents it: a real `dagster-daemon run -w workspace.yaml` on a fresh DAGSTER_HOME made from the
dev `dagster_instance/dagster.yaml` (the QueuedRunCoordinator: the daemon dequeues and launches
the run), the README's `bash scripts/dagster.sh job launch ...` command, a real OpenCode server
and the scripted model, a fresh SQLite application database set up with `indorch`.

Contract: the launched run ends SUCCESS and carries the `tenant` tag (the README's command passes
`--tags`: the config alone does not tag a run), so the queue's per-tenant limit applies to it; it
submitted exactly one session, which is COMPLETED with the file the model wrote recorded; not one
process started here (daemon, code servers, run worker, the launch command) is left running,
whatever happened. 30-45 s on a busy 2-core machine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from domain.caller import Caller
from domain.session import SessionStatus
from indorch.demo.processes import Child, log_tail
from indorch.demo.watchdog import DEMO_ID_VAR, terminate_leftovers
from instance_plugins.run_worker.worker import WORKER_PID_TAG
from resources.database import Database
from resources.settings import DATABASE_URL_VAR, PROJECT_ROOT, REDIS_URL_VAR, STATE_DIR_VAR
from services.session_service import SessionService
from services.waves import JOB_NAME, TENANT_TAG, WAVE_OP
from standins.opencode_server import OpenCodeServer
from tests.integration.cli.support import ok

pytestmark = [pytest.mark.opencode, pytest.mark.timeout(420)]
TENANT = "acme"
PROMPT = '[script:write path=x.md content="hi" reply="Done."] Write x.md.'
DAGSTER_TEMPLATE = PROJECT_ROOT / "dagster_instance" / "dagster.yaml"
LAUNCH_TIMEOUT_SECONDS = 120
RUN_TIMEOUT_SECONDS = 180
DAEMON_STOP_SECONDS = 20.0
LOG_TAIL_CHARS = 4000
POLL_SECONDS = 0.25  # `done` is a query of the instance's SQLite storage: cheap


@contextmanager
def dagster_process(
    program: str, args: list[str], env: dict[str, str], log_path: Path
) -> Iterator[Child]:
    """`<program> <args>` (a Dagster command beside this Python) from the project root, in its
    own process group; stopped on the way out (SIGINT: its own shutdown, e.g. the daemon's of
    its code server, then the group is terminated)."""
    child = start_dagster(program, args, env, log_path)
    try:
        yield child
    finally:
        child.stop(DAEMON_STOP_SECONDS)


def start_dagster(program: str, args: list[str], env: dict[str, str], log_path: Path) -> Child:
    """`<program> <args>` started as `dagster_process` starts it; stopping it is the caller's."""
    executable = Path(sys.executable).with_name(program)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(executable), *args],
            cwd=PROJECT_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Child(program, process, log_path)


def dagster_daemon(env: dict[str, str], log_path: Path) -> AbstractContextManager[Child]:
    """`dagster-daemon run -w workspace.yaml`."""
    return dagster_process("dagster-daemon", ["run", "-w", "workspace.yaml"], env, log_path)


def launch_command(run_id: str) -> list[str]:
    """The README's command, with the run id chosen here (to find the run)."""
    config = {"ops": {WAVE_OP: {"config": {"tenant": TENANT, "prompt": PROMPT}}}}
    return [
        "bash", "scripts/dagster.sh", "job", "launch", "-w", "workspace.yaml", "-j", JOB_NAME,
        "--config-json", json.dumps(config), "--tags", json.dumps({TENANT_TAG: TENANT}),
        "--run-id", run_id,
    ]  # fmt: skip


def run_state(instance: dg.DagsterInstance, run_id: str, events: int = 15) -> str:
    run = instance.get_run_by_id(run_id)
    lines = [f"run {run_id}: {run.status.value if run else 'not found'}; its last events:"]
    for entry in instance.all_logs(run_id)[-events:]:
        kind = entry.dagster_event.event_type_value if entry.dagster_event else "log"
        lines.append(f"  {kind}: {entry.message or ''}"[:500])
    return "\n".join(lines)


def captured_stderr(instance: dg.DagsterInstance, run_id: str) -> bytes:
    [capture] = instance.all_logs(run_id, of_type=dg.DagsterEventType.LOGS_CAPTURED)
    file_key = capture.get_dagster_event().logs_captured_data.file_key
    manager = instance.compute_log_manager
    return manager.get_log_data(manager.build_log_key_for_run(run_id, file_key)).stderr or b""


def run_ended(instance: dg.DagsterInstance, run_id: str) -> bool:
    run = instance.get_run_by_id(run_id)
    return run is not None and run.is_finished


def sessions_state(service: SessionService) -> str:
    sessions = service.list(Caller.operator(), TENANT)
    return "sessions: " + (
        ", ".join(f"{s.id} {s.status.value} ({s.status_reason})" for s in sessions) or "none"
    )


def wait_until(
    done: Callable[[], bool], what: str, daemon: Child, seconds: float, state: Callable[[], str]
) -> None:
    """Polls `done` until it holds; fails, saying `state()` and the daemon's log tail, when the
    daemon exits or `seconds` pass."""
    deadline = time.monotonic() + seconds
    while not done():
        code = daemon.exited()
        if code is not None or time.monotonic() > deadline:
            why = (
                f"the daemon exited with {code}" if code is not None else f"not after {seconds:g} s"
            )
            pytest.fail(
                f"waiting for {what}: {why}.\n{state()}\n"
                f"{daemon.log_path} ends with:\n{log_tail(daemon.log_path, LOG_TAIL_CHARS)}",
                pytrace=False,
            )
        time.sleep(POLL_SECONDS)


@dataclass(frozen=True)
class DevWorld:
    """A fresh development state: SQLite application database with the tenant and its agent on
    the OpenCode server (set up with `indorch`), a DAGSTER_HOME from the dev template, and the
    environment of the processes started on it (each carrying `marker`, for the clean-up)."""

    database_url: str
    dagster_home: Path
    env: dict[str, str]
    cli: dict[str, str]
    marker: str

    @classmethod
    def made(cls, tmp_path: Path, opencode_server: OpenCodeServer, name: str) -> DevWorld:
        state = tmp_path / "state"
        dagster_home = state / "dagster"
        dagster_home.mkdir(parents=True)
        shutil.copyfile(DAGSTER_TEMPLATE, dagster_home / "dagster.yaml")
        database_url = f"sqlite:///{state / 'indorch.db'}"
        marker = f"{name}-{uuid.uuid4().hex[:12]}"
        env = {
            **{k: v for k, v in os.environ.items() if k not in {"DAGSTER_HOME", REDIS_URL_VAR}},
            DATABASE_URL_VAR: database_url,
            STATE_DIR_VAR: str(state),  # scripts/dagster.sh: DAGSTER_HOME=<state>/dagster
            DEMO_ID_VAR: marker,
            "PYTHONUNBUFFERED": "1",
        }
        cli = {k: env[k] for k in (STATE_DIR_VAR, DEMO_ID_VAR)}
        ok(database_url, "db", "upgrade", env=cli)
        ok(database_url, "tenant", "create", TENANT, "--name", "Acme", env=cli)
        agent = ("agent", "register", "--tenant", TENANT, "--name", "builder")
        ok(database_url, *agent, "--url", opencode_server.url, env=cli)
        return cls(database_url, dagster_home, env, cli, marker)


def test_dagster_job_launch_with_tenant_and_prompt_runs_one_session(
    opencode_server: OpenCodeServer, tmp_path: Path
) -> None:
    world = DevWorld.made(tmp_path, opencode_server, "job-launch")
    database_url, dagster_home, env, marker = (
        world.database_url,
        world.dagster_home,
        world.env,
        world.marker,
    )

    run_id = str(uuid.uuid4())
    daemon_env = {**env, "DAGSTER_HOME": str(dagster_home)}
    database = Database(database_url)
    service = SessionService(database)
    try:
        # The instance first: its storage is created here, before the daemon starts (two
        # processes creating the SQLite storage at once can fail with "table ... already exists").
        with (
            dg.DagsterInstance.from_config(str(dagster_home)) as instance,
            dagster_daemon(daemon_env, tmp_path / "daemon.log") as daemon,
        ):
            launched = subprocess.run(
                launch_command(run_id),
                cwd=PROJECT_ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=LAUNCH_TIMEOUT_SECONDS,
                check=False,
            )
            assert launched.returncode == 0, (launched.stdout, launched.stderr[-LOG_TAIL_CHARS:])

            wait_until(
                lambda: run_ended(instance, run_id),
                f"run {run_id} to end",
                daemon,
                RUN_TIMEOUT_SECONDS,
                lambda: run_state(instance, run_id),
            )
            run = instance.get_run_by_id(run_id)
            assert run.status is dg.DagsterRunStatus.SUCCESS, run_state(instance, run_id)
            assert run.tags.get(TENANT_TAG) == TENANT, run.tags
            assert WORKER_PID_TAG in run.tags, "executed by the instance's run worker"
            # The step's output, as the UI reads it (the project's compute-log manager).
            assert b'Started execution of step "supervise_wave"' in captured_stderr(
                instance, run_id
            )
            # The run's session is final when the run ends, unless the dispatch sensor claimed it
            # first (between the op's submit and its claim): then a wave of the sensor's runs it.
            wait_until(
                lambda: [s.is_final for s in service.list(Caller.operator(), TENANT)] == [True],
                "the session to end",
                daemon,
                RUN_TIMEOUT_SECONDS,
                lambda: sessions_state(service),
            )
            [session] = service.list(Caller.operator(), TENANT)
    finally:
        left = terminate_leftovers(marker)
        database.dispose()
    assert left == [], f"processes left running after the daemon stopped: {left}"
    assert session.status is SessionStatus.COMPLETED, (session.status, session.status_reason)
    assert session.initial_prompt == PROMPT
    assert session.result is not None
    assert session.result["files_changed"] == 1, session.result
    assert [entry["file"] for entry in session.result["files"]] == ["x.md"]
    # Written in the session's own scratch workspace (a slot: its files removed once the session
    # ended, its diff kept in the result above), not in the server's default one.
    workspace = Path(session.metadata["agent_directory"])
    assert workspace == Path(session.metadata["workspace"]["directory"])
    assert workspace.name.startswith("slot-"), workspace
    assert not (workspace / "x.md").exists()
    assert not (opencode_server.workspace / "x.md").exists()
