"""The demo's child processes: the scripted model, the stand-in fine-tuning provider, the git
server over HTTP and `dagster dev` (the tenants' OpenCode servers are managed runtimes:
`indorch.demo.tenant_runtimes`).

Every child runs in its own process group (`start_new_session`), so Ctrl-C in the terminal
reaches only the driver, which then stops them in order: Dagster first (SIGINT: its own clean
shutdown of webserver, daemon and code server), then what is left of its group (the code server,
run workers), then the tenants' runtimes (`stop_runtimes`), then the rest. Every child (and
everything it starts) carries ``INDORCH_DEMO_ID`` in its environment; the runtimes, whose
environment is built from nothing, are known by their root in their command line: whatever
survived is found afterwards and killed, and the watchdog (`indorch.demo.watchdog`, started
first) does the same if the driver itself is killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from indorch.demo.watchdog import DEMO_ID_VAR, MARKER_VAR
from resources.settings import PROJECT_ROOT
from standins.opencode_server import OpenCodeNotInstalled, find_opencode_binary, free_port

DAGSTER_START_TIMEOUT_SECONDS = 120.0
MODEL_START_TIMEOUT_SECONDS = 30.0
GIT_ACCOUNTS_VAR = "INDORCH_DEMO_GIT_ACCOUNTS"  # the git server's alone, not the other children's
DAGSTER_STOP_SECONDS = 20.0
GROUP_STOP_SECONDS = 3.0
LOG_TAIL_CHARS = 3000
WATCHDOG_STOP_SECONDS = 10.0


class DemoError(Exception):
    """The demo cannot go on (a port is taken, a process did not start); the message says why."""


class PortTaken(DemoError):
    def __init__(self, host: str, port: int, what: str, hint: str) -> None:
        super().__init__(f"port {port} on {host} ({what}) is already in use: {hint}")


def require_free_port(host: str, port: int, what: str, hint: str) -> None:
    """Refuse a port someone already listens on (TIME_WAIT leftovers do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            raise PortTaken(host, port, what, hint) from None


def _signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _wait_group_gone(process: subprocess.Popen[bytes], seconds: float) -> bool:
    """True once no process of the group led by `process` is left (our own child, the leader,
    is reaped on the way: unreaped, its zombie would keep the group alive)."""
    deadline = time.monotonic() + seconds
    while process.poll() is None or _group_alive(process.pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def log_tail(path: Path, chars: int = LOG_TAIL_CHARS) -> str:
    if not path.exists():
        return ""
    return path.read_text(errors="replace")[-chars:]


@dataclass
class Child:
    """A process we started, in its own process group, with its output in `log_path`."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def exited(self) -> int | None:
        return self.process.poll()

    def stop(self, interrupt_seconds: float = 0.0) -> None:
        """SIGINT first when `interrupt_seconds` > 0 (a clean shutdown), then SIGTERM to the whole
        group, then SIGKILL to whatever is left of it."""
        if interrupt_seconds > 0 and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(interrupt_seconds)
        _signal_group(self.pid, signal.SIGTERM)
        if not _wait_group_gone(self.process, GROUP_STOP_SECONDS):
            _signal_group(self.pid, signal.SIGKILL)
            _wait_group_gone(self.process, GROUP_STOP_SECONDS)


@dataclass
class DemoProcesses:
    """Starts the demo's processes and stops every one of them (`stop_all`, idempotent)."""

    env: dict[str, str]
    logs: Path
    children: list[Child] = field(default_factory=list)
    watchdog: subprocess.Popen[bytes] | None = None
    stop_runtimes: Callable[[], None] | None = None  # after Dagster (its sensor restarts them)

    def start_watchdog(self, marker: str) -> None:
        """Before anything else: it stops the demo's processes if this one dies unannounced,
        and the processes whose command line holds `marker` (the runtimes' root). It carries
        neither the demo id nor the marker in its command line (it would count as left over)."""
        demo_id = self.env[DEMO_ID_VAR]
        env = {k: v for k, v in self.env.items() if k != DEMO_ID_VAR}
        with (self.logs / "watchdog.log").open("wb") as log:
            self.watchdog = subprocess.Popen(
                [sys.executable, "-m", "indorch.demo.watchdog", demo_id],
                cwd=PROJECT_ROOT,
                env={**env, MARKER_VAR: marker},
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop_watchdog(self) -> None:
        """Close its pipe: it looks once more (nothing left after `stop_all`) and exits."""
        watchdog, self.watchdog = self.watchdog, None
        if watchdog is None:
            return
        if watchdog.stdin is not None:
            watchdog.stdin.close()
        try:
            watchdog.wait(WATCHDOG_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            watchdog.kill()
            watchdog.wait()

    def _spawn(
        self, name: str, command: list[str], extra_env: dict[str, str] | None = None
    ) -> Child:
        log_path = self.logs / f"{name}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                command,
                cwd=PROJECT_ROOT,
                env={**self.env, **(extra_env or {})},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        child = Child(name, process, log_path)
        self.children.append(child)
        return child

    # -- the scripted model ---------------------------------------------------------------------

    def start_scripted_model(self, host: str = "127.0.0.1") -> str:
        """`python -m standins.scripted_model` on a free port; returns its URL once it answers."""
        port = free_port(host)
        child = self._spawn(
            "scripted-model",
            [sys.executable, "-m", "standins.scripted_model", "--host", host, "--port", str(port)],
        )
        url = f"http://{host}:{port}"
        _wait_until(
            lambda: _answers(f"{url}/v1/models"),
            child,
            MODEL_START_TIMEOUT_SECONDS,
            "the scripted model",
        )
        return url

    # -- the fine-tuning provider ---------------------------------------------------------------

    def start_finetune_provider(self, api_url: str, data_dir: Path, step_seconds: float) -> None:
        """`python -m standins.finetune_provider` on the port of `api_url` (chosen beforehand:
        Dagster's code location reads the URL from its environment); returns once it answers."""
        parts = urlsplit(api_url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        child = self._spawn(
            "finetune-provider",
            [
                sys.executable, "-m", "standins.finetune_provider", "--host", host,
                "--port", str(port), "--data", str(data_dir), "--step-seconds", str(step_seconds),
            ],
        )  # fmt: skip
        _wait_until(
            lambda: _answers(f"{parts.scheme}://{host}:{port}/_standin/requests"),
            child,
            MODEL_START_TIMEOUT_SECONDS,
            "the fine-tuning provider",
        )

    # -- the git server -------------------------------------------------------------------------

    def start_git_server(self, root: Path, accounts: dict[str, tuple[str, str]]) -> str:
        """`python -m standins.git_http_server` serving the bare repositories under `root`, each
        account (`{directory: (user, password)}`) reaching only its directory's (the passwords
        in its environment only); returns its URL."""
        host, port = "127.0.0.1", free_port()
        child = self._spawn(
            "git-server",
            [
                sys.executable, "-m", "standins.git_http_server", "--root", str(root),
                "--port", str(port), "--accounts-env", GIT_ACCOUNTS_VAR,
            ],
            {GIT_ACCOUNTS_VAR: json.dumps(accounts)},
        )  # fmt: skip
        url = f"http://{host}:{port}"
        _wait_until(
            lambda: _answers_at_all(url), child, MODEL_START_TIMEOUT_SECONDS, "the git server"
        )
        return url

    # -- OpenCode -------------------------------------------------------------------------------

    @staticmethod
    def require_opencode() -> None:
        """The pinned OpenCode install the runtimes run (installed now if missing)."""
        try:
            find_opencode_binary(install=True)
        except OpenCodeNotInstalled as missing:
            raise DemoError(str(missing)) from None

    # -- Dagster --------------------------------------------------------------------------------

    def start_dagster(self, host: str, port: int) -> Child:
        """`dagster dev -w workspace.yaml` (webserver + daemon); does not wait (see below)."""
        dagster = Path(sys.executable).with_name("dagster")
        command = [str(dagster), "dev", "-w", "workspace.yaml", "-h", host, "-p", str(port)]
        return self._spawn("dagster", command)

    def wait_for_dagster(self, child: Child, url: str) -> None:
        _wait_until(
            lambda: _answers(f"{url}/server_info"),
            child,
            DAGSTER_START_TIMEOUT_SECONDS,
            "the Dagster webserver",
        )

    # -- stopping -------------------------------------------------------------------------------

    def stop_all(self) -> dict[str, float]:
        """Dagster first (its runs talk to the runtimes, its sensor would restart them), then the
        tenants' runtimes, then the rest (the model last but for the provider and git server,
        whose servers would otherwise wait for their connections to close). Returns the seconds
        each took; safe to call again."""
        took: dict[str, float] = {}
        for child in [c for c in self.children if c.name == "dagster"]:
            took[child.name] = _timed(lambda child=child: child.stop(DAGSTER_STOP_SECONDS))
        stop_runtimes, self.stop_runtimes = self.stop_runtimes, None
        if stop_runtimes is not None:
            took["runtimes"] = _timed(stop_runtimes)
        for child in [c for c in self.children if c.name != "dagster"]:
            took[child.name] = _timed(child.stop)
        self.children.clear()
        return took


def _timed(action: Callable[[], None]) -> float:
    began = time.monotonic()
    action()
    return time.monotonic() - began


def _answers_at_all(url: str) -> bool:
    """Any HTTP answer (the git server answers 401 without credentials)."""
    try:
        httpx.get(url, timeout=2.0)
    except httpx.HTTPError:
        return False
    return True


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def _wait_until(check: Callable[[], bool], child: Child, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        code = child.exited()
        if code is not None:
            raise DemoError(
                f"{what} exited with {code} while starting; {child.log_path} ends with:\n"
                f"{log_tail(child.log_path)}"
            )
        if time.monotonic() > deadline:
            raise DemoError(
                f"{what} did not answer within {seconds:g} s; {child.log_path} ends with:\n"
                f"{log_tail(child.log_path)}"
            )
        time.sleep(0.3)
