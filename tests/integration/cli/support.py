"""Running `indorch` as operators do: a process of its own against a real database, with extra env.

A command runs in a child forked from the test process (`indorch`): the console script's entry
point (`indorch.main.run`) with the command's arguments, environment, standard streams and exit
code, in a process of its own, but without a new interpreter's start-up and imports, which took
about a second per command here (most of these tests' time). The child imports the CLI's own
modules afresh (they make their consoles from the environment) and gets Python's default warning
filters and logging back (pytest's are not a command's). `indorch_process` runs the installed
script in a new interpreter: `start_indorch` (commands left running) and the entry point's tests.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path

INDORCH = shutil.which("indorch", path=str(Path(sys.executable).parent)) or "indorch"
CLI_PACKAGE = "indorch"
# Imported once in the test process, so that a forked command finds them loaded: the lower layers
# the commands import when they run (none reads the environment when imported).
PRELOADED = (
    "typer",
    "rich.console",
    "resources.database",
    "resources.database.schema_version",
    "resources.database.migrate",
    "resources.settings",
    "resources.opencode.control",
    "services.factory",
)
WAIT_STEP_SECONDS = 0.002


def cli_env(url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": url, "NO_COLOR": "1", "COLUMNS": "200", **(extra or {})}


def indorch_process(
    url: str,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 60,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """The installed `indorch` script in a new interpreter."""
    return subprocess.run(
        [INDORCH, *args],
        env=cli_env(url, env),
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def indorch(
    url: str,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 60,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """`indorch *args` in a child forked from this process (see the module's docstring)."""
    for module in PRELOADED:
        importlib.import_module(module)
    with tempfile.TemporaryDirectory(prefix="indorch-cli-") as streams:
        paths = [Path(streams) / name for name in ("stdin", "stdout", "stderr")]
        paths[0].write_text(stdin or "")
        for path in paths[1:]:
            path.touch()
        child = os.fork()
        if child == 0:
            _run_command([INDORCH, *args], cli_env(url, env), paths, stdin is not None)
        code = _wait(child, timeout, [INDORCH, *args])
        return subprocess.CompletedProcess(
            [INDORCH, *args], code, paths[1].read_text(), paths[2].read_text()
        )


def _wait(child: int, timeout: float, command: list[str]) -> int:
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(child, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(child, signal.SIGKILL)
            os.waitpid(child, 0)
            raise subprocess.TimeoutExpired(command, timeout)
        time.sleep(WAIT_STEP_SECONDS)


def _run_command(argv: list[str], env: dict[str, str], paths: list[Path], has_stdin: bool) -> None:
    """In the forked child: becomes the command's process, runs it, and exits with its code."""
    code = 1
    try:
        os.environ.clear()
        os.environ.update(env)
        stdin_path = paths[0] if has_stdin else Path(os.devnull)
        for fd, path, flags in (
            (0, stdin_path, os.O_RDONLY),
            (1, paths[1], os.O_WRONLY),
            (2, paths[2], os.O_WRONLY),
        ):
            opened = os.open(path, flags)
            os.dup2(opened, fd)
            os.close(opened)
        sys.stdin = sys.__stdin__ = open(0, closefd=False)  # noqa: SIM115
        sys.stdout = sys.__stdout__ = open(1, "w", closefd=False)  # noqa: SIM115
        sys.stderr = sys.__stderr__ = open(2, "w", closefd=False)  # noqa: SIM115
        sys.argv = argv
        _python_defaults()
        for name in [n for n in sys.modules if n.split(".")[0] == CLI_PACKAGE]:
            del sys.modules[name]
        from indorch.main import run

        run()
        code = 0
    except SystemExit as exit_:
        if exit_.code is None or isinstance(exit_.code, int):
            code = exit_.code or 0
        else:
            print(exit_.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
    finally:
        # What the interpreter does at exit and os._exit skips: its exit callbacks (a thread
        # pool's shutdown) and the join of the threads that are not daemons (e.g. the wave
        # trigger's launch, which a real `indorch session submit` finishes before it exits).
        with contextlib.suppress(Exception):
            threading._shutdown()  # type: ignore[attr-defined]
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


def _python_defaults() -> None:
    """What a new interpreter starts with, in place of what pytest set: warnings printed to
    stderr under Python's default filters, logging with no handler, default signal handlers."""
    importlib.reload(warnings)
    warnings.resetwarnings()
    warnings.filterwarnings("default", category=DeprecationWarning, module="__main__")
    for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
        warnings.simplefilter("ignore", category, append=True)
    logging.root.handlers.clear()
    logging.root.setLevel(logging.WARNING)
    logging.disable(logging.NOTSET)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for number in (signal.SIGTERM, signal.SIGALRM):
            signal.signal(number, signal.SIG_DFL)


def start_indorch(url: str, *args: str) -> subprocess.Popen[str]:
    """A command left running (--wait, --follow); the caller collects it with `communicate`."""
    return subprocess.Popen(
        [INDORCH, *args],
        env=cli_env(url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def ok(url: str, *args: str, env: dict[str, str] | None = None) -> str:
    done = indorch(url, *args, env=env)
    assert done.returncode == 0, (done.stdout, done.stderr)
    return done.stdout


def refused(url: str, *args: str, env: dict[str, str] | None = None) -> str:
    """Runs a command expected to be refused: exit 2 and exactly one line on stderr."""
    done = indorch(url, *args, env=env)
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def one_line_error(done: subprocess.CompletedProcess[str] | Sequence[str]) -> str:
    stderr = done.stderr if isinstance(done, subprocess.CompletedProcess) else done[1]
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]
