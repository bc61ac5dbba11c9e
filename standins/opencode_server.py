"""Start and stop a REAL OpenCode server process (``opencode serve``) against the scripted model.

    with OpenCodeServer(model_url="http://127.0.0.1:18080") as server:
        httpx.post(f"{server.url}/session", json={})

What a server gets:

- the binary installed by ``scripts/install_opencode.sh`` (``opencode-ai``, pinned) under
  ``<project>/.tools/opencode``, or ``$INDORCH_OPENCODE_BIN``;
- ``OPENCODE_CONFIG_CONTENT`` = :func:`standins.opencode_config.provider_config` (provider
  ``scripted``, model ``scripted/coder``, ``baseURL`` = the scripted model);
- a ``HOME`` (temporary unless given; share one per test run: the first prompt installs the
  provider package from npm into it, a few seconds, once per HOME); ``XDG_*`` variables are
  dropped so OpenCode's data, config, cache and state all live under that HOME;
- ``OPENCODE_DISABLE_AUTOUPDATE=1``, ``OPENCODE_DISABLE_MODELS_FETCH=1``,
  ``OPENCODE_DISABLE_DEFAULT_PLUGINS=1``; ``OPENCODE_SERVER_PASSWORD`` when a password is given
  (HTTP Basic auth, user ``opencode``);
- cwd = a git workspace (temporary unless given; created with one commit if it is not one).

``start()`` waits (bounded) for ``GET /global/health``; on failure the error carries the tail of
the server's log. ``stop()`` terminates the process group, then kills it. Manual runs::

    python -m standins.opencode_server --port 4096 --model-url http://127.0.0.1:18080 \\
        [--password P] [--workspace DIR] [--home DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from standins.git_workspace import create_git_workspace
from standins.opencode_config import provider_config_json

OPENCODE_VERSION = "1.18.33"
PROJECT_ROOT = Path(__file__).resolve().parents[1]
INSTALL_SCRIPT = PROJECT_ROOT / "scripts" / "install_opencode.sh"
DEFAULT_BINARY = PROJECT_ROOT / ".tools" / "opencode" / "node_modules" / ".bin" / "opencode"
BINARY_ENV = "INDORCH_OPENCODE_BIN"
BASIC_AUTH_USER = "opencode"
STARTUP_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 5.0
# How long `stop` waits after SIGTERM before SIGKILL: OpenCode 1.18 does not exit on SIGTERM
# once it has run a prompt (still there 15 s later, measured), so every such stop waited out
# the whole grace, then killed it anyway (5 s per test module's server when it was 5 s).
TERM_GRACE_SECONDS = 1.0
LOG_TAIL_CHARS = 3000


class OpenCodeNotInstalled(RuntimeError):
    """The opencode binary is not there (run ``bash scripts/install_opencode.sh``)."""


class OpenCodeStartError(RuntimeError):
    """The server process exited or did not answer its health check in time."""


def find_opencode_binary(*, install: bool = False) -> Path:
    """The opencode binary: ``$INDORCH_OPENCODE_BIN``, else the project's ``.tools`` install.

    With ``install=True`` a missing binary is installed by ``scripts/install_opencode.sh``
    (needs npm and the network); otherwise :class:`OpenCodeNotInstalled` says how to install it.
    """
    override = os.environ.get(BINARY_ENV)
    if override:
        path = Path(override)
        if not os.access(path, os.X_OK):
            raise OpenCodeNotInstalled(f"${BINARY_ENV}={override} is not an executable file")
        return path
    if os.access(DEFAULT_BINARY, os.X_OK):
        return DEFAULT_BINARY
    if install:
        result = subprocess.run(
            ["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True, check=False
        )
        if result.returncode == 0 and os.access(DEFAULT_BINARY, os.X_OK):
            return DEFAULT_BINARY
        raise OpenCodeNotInstalled(
            f"installing opencode-ai@{OPENCODE_VERSION} failed (exit {result.returncode}): "
            f"{result.stderr[-LOG_TAIL_CHARS:]}"
        )
    raise OpenCodeNotInstalled(
        f"opencode not installed at {DEFAULT_BINARY.relative_to(PROJECT_ROOT)}: "
        f"run `bash scripts/install_opencode.sh` (installs opencode-ai@{OPENCODE_VERSION} "
        f"from npm) or set ${BINARY_ENV}"
    )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def server_environment(
    *, home: Path, config_json: str, password: str | None, base: dict[str, str] | None = None
) -> dict[str, str]:
    """The environment of an OpenCode server: ``base`` (default: ours) minus ``XDG_*`` and
    inherited ``OPENCODE_*`` settings, plus the stand-in's settings."""
    source = dict(os.environ if base is None else base)
    env = {
        key: value
        for key, value in source.items()
        if not key.startswith(("XDG_", "OPENCODE_")) and key != BINARY_ENV
    }
    env.update(
        {
            "HOME": str(home),
            "OPENCODE_CONFIG_CONTENT": config_json,
            "OPENCODE_DISABLE_AUTOUPDATE": "1",
            "OPENCODE_DISABLE_MODELS_FETCH": "1",
            "OPENCODE_DISABLE_DEFAULT_PLUGINS": "1",
        }
    )
    if password:
        env["OPENCODE_SERVER_PASSWORD"] = password
    return env


class OpenCodeServer:
    """One ``opencode serve`` process with its own workspace (and a HOME, shared or not)."""

    def __init__(
        self,
        model_url: str,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        workspace: Path | None = None,
        home: Path | None = None,
        password: str | None = None,
        binary: Path | None = None,
        config_json: str | None = None,
        startup_timeout: float = STARTUP_TIMEOUT_SECONDS,
    ) -> None:
        self.model_url = model_url
        self.host = host
        self.port = port
        self.password = password
        self._requested_workspace = workspace
        self._requested_home = home
        self._binary = binary
        self._config_json = config_json
        self._startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._scratch: Path | None = None
        self._log_file = None
        self.workspace: Path | None = None
        self.home: Path | None = None
        self.log_path: Path | None = None

    # --- properties ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("server not started")
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def auth(self) -> tuple[str, str] | None:
        """The HTTP Basic credentials (``("opencode", password)``) or None without a password."""
        return (BASIC_AUTH_USER, self.password) if self.password else None

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-chars:]

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> OpenCodeServer:
        if self._process is not None:
            return self
        binary = self._binary or find_opencode_binary()
        self._scratch = Path(tempfile.mkdtemp(prefix="opencode-server-"))
        self.workspace = create_git_workspace(
            self._requested_workspace or self._scratch / "workspace"
        )
        self.home = Path(self._requested_home or self._scratch / "home").resolve()
        self.home.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port(self.host)
        self.log_path = self._scratch / "server.log"
        env = server_environment(
            home=self.home,
            config_json=self._config_json or provider_config_json(self.model_url),
            password=self.password,
        )
        command = [str(binary), "serve", "--hostname", self.host, "--port", str(self.port)]
        self._log_file = self.log_path.open("wb")
        self._process = subprocess.Popen(
            [*command, "--print-logs", "--log-level", "WARN"],
            cwd=self.workspace,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() reaches its children too
        )
        try:
            self._wait_until_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_healthy(self) -> None:
        deadline = time.monotonic() + self._startup_timeout
        last_error = "no answer yet"
        with httpx.Client(timeout=2.0, auth=self.auth) as client:
            while True:
                assert self._process is not None
                code = self._process.poll()
                if code is not None:
                    raise OpenCodeStartError(
                        f"opencode serve exited with {code} while starting; log tail:\n"
                        f"{self.log_tail()}"
                    )
                try:
                    response = client.get(f"{self.url}/global/health")
                    if response.status_code == 200:
                        return
                    last_error = f"HTTP {response.status_code}: {response.text[:200]}"
                except httpx.HTTPError as error:
                    last_error = f"{type(error).__name__}: {error}"
                if time.monotonic() > deadline:
                    raise OpenCodeStartError(
                        f"opencode serve on {self.url} not healthy after "
                        f"{self._startup_timeout:g}s ({last_error}); log tail:\n{self.log_tail()}"
                    )
                time.sleep(0.2)

    def stop(self) -> None:
        """Terminate the server's process group, kill it if it lingers, clean temporary dirs."""
        process, self._process = self._process, None
        if process is not None:
            _signal_group(process, signal.SIGTERM)
            try:
                process.wait(TERM_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait(STOP_TIMEOUT_SECONDS)
            _signal_group(process, signal.SIGKILL)  # stray children of the group, if any
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def kill(self) -> None:
        """Kill the server abruptly (SIGKILL, no cleanup by OpenCode): a crash, for fault tests."""
        if self._process is not None:
            _signal_group(self._process, signal.SIGKILL)
            self._process.wait(STOP_TIMEOUT_SECONDS)

    def __enter__(self) -> OpenCodeServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m standins.opencode_server", description=__doc__)
    parser.add_argument(
        "--model-url", required=True, help="scripted model root, e.g. http://127.0.0.1:18080"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4096)
    parser.add_argument("--password", default=None)
    parser.add_argument("--workspace", type=Path, default=None)
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--install", action="store_true", help="install opencode if missing")
    args = parser.parse_args(argv)
    # SIGTERM (and SIGINT, even where a shell ignores it for background jobs) leave the `with`
    # block below through SystemExit, so the OpenCode process group is always stopped.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGINT, _exit_on_signal)
    server = OpenCodeServer(
        args.model_url,
        host=args.host,
        port=args.port,
        workspace=args.workspace,
        home=args.home,
        password=args.password,
        binary=find_opencode_binary(install=args.install),
    )
    with server:
        print(
            f"opencode {OPENCODE_VERSION} on {server.url} (pid {server.pid}), "
            f"workspace {server.workspace}, log {server.log_path}; Ctrl-C stops it",
            flush=True,
        )
        while server.running():
            time.sleep(0.5)
        print(f"opencode exited; log tail:\n{server.log_tail()}", flush=True)


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    main()
