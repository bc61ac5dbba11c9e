"""Launching one tenant's `opencode serve` in its sandbox and waiting until it answers.

The server gets: the tenant's HOME (OpenCode's data, config and provider packages live there;
the first prompt installs the provider package from the npm registry into it, which the shared
network of the sandbox reaches), a workspace directory of the tenant as its cwd, the OpenCode
config the platform gives (`OPENCODE_CONFIG_CONTENT`), and its password in
`OPENCODE_SERVER_PASSWORD` (the process environment only: never argv, never logged).
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from resources.runtime_host import processes
from resources.runtime_host.processes import ProcessHandle
from resources.runtime_host.sandbox import (
    SandboxSpec,
    run_in_sandbox,
    sandbox_argv,
    sandbox_environment,
)
from resources.runtime_host.shared_install import sandbox_visible
from resources.runtime_host.tenant_users import TenantUser

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BINARY_ENV = "INDORCH_OPENCODE_BIN"
INSTALL_DIR = PROJECT_ROOT / ".tools" / "opencode"
BINARY_IN_INSTALL = Path("node_modules") / ".bin" / "opencode"
BASIC_AUTH_USER = "opencode"
HOST = "127.0.0.1"
STARTUP_TIMEOUT_SECONDS = 90.0
LOG_TAIL_CHARS = 2000
DEFAULT_WORKSPACE = "default"


class RuntimeStartError(RuntimeError):
    """The server exited, or did not answer its health check in time (the log's tail says why)."""


@dataclass(frozen=True)
class LaunchedServer:
    handle: ProcessHandle
    port: int

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"


def opencode_install() -> tuple[Path, Path]:
    """(the directory to mount read-only, the binary in it): `$INDORCH_OPENCODE_BIN`'s install
    or the project's `.tools/opencode`, with links resolved (the sandbox sees real paths)."""
    override = os.environ.get(BINARY_ENV)
    if override:
        binary = Path(override).resolve()
        install = binary.parents[2] if binary.parent.name == "bin" else binary.parent
        return install, binary
    binary = (INSTALL_DIR / BINARY_IN_INSTALL).resolve()
    return INSTALL_DIR.resolve(), binary


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def launch_server(
    user: TenantUser, password: str, config_json: str, *, sandboxed: bool = True
) -> LaunchedServer:
    """Start the tenant's server (detached) and wait until `/global/health` answers."""
    install, binary = opencode_install()
    if not os.access(binary, os.X_OK):
        raise RuntimeStartError(
            f"opencode is not installed at {binary} (run scripts/install_opencode.sh)"
        )
    if sandboxed:  # mounted as the tenant's user: it must be able to reach it
        install, binary = sandbox_visible(install, binary, user.tenant_dir.parent)
    cwd = default_workspace(user, sandboxed)
    port = free_port()
    # bwrap --die-with-parent under a `setsid --wait` of its own: the sandbox lives exactly as
    # long as the process recorded for it (killing that one ends every process inside), and
    # not a moment longer than bwrap itself, whatever becomes of the command that started it.
    spec = SandboxSpec(
        user=user,
        cwd=cwd,
        read_only=(install,),
        sandboxed=sandboxed,
        die_with_parent=True,
    )
    command = [str(binary), "serve", "--hostname", HOST, "--port", str(port)]
    command += ["--print-logs", "--log-level", "WARN"]
    env = sandbox_environment(
        user,
        {
            "OPENCODE_CONFIG_CONTENT": config_json,
            "OPENCODE_DISABLE_AUTOUPDATE": "1",
            "OPENCODE_DISABLE_MODELS_FETCH": "1",
            "OPENCODE_DISABLE_DEFAULT_PLUGINS": "1",
            "OPENCODE_SERVER_PASSWORD": password,
        },
    )
    holder = ["setsid", "--wait"] if sandboxed else []
    handle = processes.launch_detached(
        [*holder, *sandbox_argv(spec, command)],
        env,
        user.log_path,
        cwd=cwd if not sandboxed else "/",
    )
    server = LaunchedServer(handle, port)
    try:
        wait_until_healthy(server, password, user.log_path)
    except BaseException:
        processes.stop(handle)
        raise
    return server


def default_workspace(user: TenantUser, sandboxed: bool) -> Path:
    """The server's own project: a git repository of the tenant's (made as the tenant, in its
    sandbox, on first use), so OpenCode can make worktrees in it for the tenant's sessions."""
    workspace = user.workspaces / DEFAULT_WORKSPACE
    if (workspace / ".git").exists():
        return workspace
    script = (
        f"git init -q -b main {workspace} && cd {workspace} && "
        "git -c user.name=indorch -c user.email=indorch@localhost "
        "commit -q --allow-empty -m 'runtime workspace'"
    )
    result = run_in_sandbox(user, ["sh", "-c", script], timeout=60, sandboxed=sandboxed)
    if result.returncode != 0:
        raise RuntimeStartError(f"the runtime's workspace was not made: {result.stderr[-500:]}")
    return workspace


def wait_until_healthy(
    server: LaunchedServer, password: str, log_path: Path, timeout: float = STARTUP_TIMEOUT_SECONDS
) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    with httpx.Client(timeout=2.0, auth=(BASIC_AUTH_USER, password)) as client:
        while True:
            if not processes.is_alive(server.handle):
                raise RuntimeStartError(f"opencode serve exited while starting; {_tail(log_path)}")
            try:
                response = client.get(f"{server.url}/global/health")
                if response.status_code == 200:
                    return
                last = f"HTTP {response.status_code}"
            except httpx.HTTPError as error:
                last = type(error).__name__
            if time.monotonic() > deadline:
                raise RuntimeStartError(
                    f"opencode serve on {server.url} not healthy after {timeout:g}s ({last}); "
                    f"{_tail(log_path)}"
                )
            time.sleep(0.25)


def _tail(log_path: Path) -> str:
    try:
        return "log tail:\n" + log_path.read_text(errors="replace")[-LOG_TAIL_CHARS:]
    except OSError:
        return "no log"
