"""One production host for the tests: deploy/Procfile's processes started as its lines say, from
the project's root, each in a process group of its own so a test can kill one (`kill -9` in the
chaos suite) and start it again, as a supervisor (systemd, honcho, Kubernetes) would."""

from __future__ import annotations

import contextlib
import os
import random
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.integration.deploy.support import DEPLOY, ROOT, dagster_home, psycopg2_url

BIN = Path(sys.executable).parent
STOP_WITHIN_SECONDS = 30
# Ports the host's servers listen on (`free_ports`).
LISTEN_PORTS = (20000, 32768)
# A host's stop (a test's end) gives its processes this long in all after SIGTERM, then SIGKILL:
# alone they stop in 1-6 s, but in CI runs three tests each spent the whole 30 s the stop gave
# them before (a code server finishes its current RPC calls first, for up to 60 s).
STOP_GRACE_SECONDS = 10


def procfile() -> dict[str, str]:
    lines = (DEPLOY / "Procfile").read_text().splitlines()
    entries = [line.split(":", 1) for line in lines if line.strip() and not line.startswith("#")]
    return {name.strip(): command.strip() for name, command in entries}


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports below the kernel's ephemeral range (32768-60999 by default),
    where no outgoing connection of the processes starting at the same time can take one before
    its server binds it; each probe stays bound until all are picked."""
    chosen = random.Random()
    with contextlib.ExitStack() as probes:
        ports: list[int] = []
        while len(ports) < count:
            port = chosen.randrange(*LISTEN_PORTS)
            probe = probes.enter_context(socket.socket())
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            ports.append(port)
        return ports


def wait_for(
    what: str,
    check: Callable[[], bool],
    within: float = 180,
    every: float = 1,
    explain: Callable[[], str] | None = None,
) -> None:
    """Until `check()` is true; an exception counts as "not yet" (a process still starting).
    On time out, the failure carries `explain()` (what was seen, the processes' logs)."""
    deadline = time.monotonic() + within
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as error:  # not up yet
            last_error = error
        time.sleep(every)
    seen = f"\n{explain()}" if explain is not None else ""
    raise AssertionError(
        f"{what} not seen within {within:.0f} s (last error: {last_error!r}){seen}"
    )


def production_environment(
    tmp_path: Path,
    *,
    dagster_postgres_url: str,
    database_url: str,
    redis_url: str,
    **extra: str,
) -> dict[str, str]:
    """The environment deploy/Procfile's header names, with free ports and a DAGSTER_HOME holding
    deploy/dagster.yaml."""
    webserver_port, code_server_port, api_port = free_ports(3)
    return {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "DAGSTER_HOME": str(dagster_home(tmp_path)),
        "DAGSTER_PG_URL": psycopg2_url(dagster_postgres_url),
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "INDORCH_STATE_DIR": str(tmp_path / "state"),
        "DAGSTER_CODE_SERVER_HOST": "127.0.0.1",
        "DAGSTER_CODE_SERVER_PORT": str(code_server_port),
        "INDORCH_API_PORT": str(api_port),
        "DAGSTER_WEBSERVER_PORT": str(webserver_port),
        "INDORCH_DAGSTER_WEBSERVER_URL": f"http://127.0.0.1:{webserver_port}",
        **extra,
    }


class ProductionHost:
    """The Procfile's processes on one environment; logs in `logs/<name>.log` (appended across
    restarts, so a test's failure shows every life of a process). `add` names another process
    of the host (a monitoring server), started, killed and logged the same way."""

    def __init__(self, environment: dict[str, str], logs: Path) -> None:
        self.environment = environment
        self.logs = logs
        self.commands = procfile()
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        logs.mkdir(parents=True, exist_ok=True)

    def add(self, name: str, argv: list[str]) -> None:
        if name in self.commands:
            raise ValueError(f"{name} is a process of the host already")
        self.commands[name] = shlex.join(argv)

    def start(self, *names: str) -> None:
        for name in names:
            running = self.processes.get(name)
            if running is not None and running.poll() is None:
                raise RuntimeError(f"{name} is already running (pid {running.pid})")
            with self.log_path(name).open("ab") as log:
                self.processes[name] = subprocess.Popen(
                    ["bash", "-c", f"exec {self.commands[name]}"],
                    cwd=ROOT,
                    env=self.environment,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """`sig` to the process's whole group (a daemon's children die with it, as on a host
        whose process was killed by the OOM killer or an operator's `kill -9` of the group)."""
        process = self.processes[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        process.wait(timeout=STOP_WITHIN_SECONDS)

    def restart(self, name: str) -> None:
        self.kill(name)
        self.start(name)

    def running(self, name: str) -> bool:
        process = self.processes.get(name)
        return process is not None and process.poll() is None

    def log_path(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def log(self, name: str) -> str:
        path = self.log_path(name)
        return path.read_text(errors="replace") if path.exists() else ""

    def tails(self, lines: int = 40) -> str:
        """The end of every process's log, for a failure message."""
        parts = []
        for name in self.processes:
            state = "running" if self.running(name) else f"exited {self.processes[name].poll()}"
            tail = "\n".join(self.log(name).splitlines()[-lines:])
            parts.append(f"--- {name} ({state}), last {lines} lines of its log:\n{tail}")
        return "\n".join(parts)

    def stop(self) -> None:
        """SIGTERM to every group, SIGKILL to those still alive after the grace period."""
        for process in self.processes.values():
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def __enter__(self) -> ProductionHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
