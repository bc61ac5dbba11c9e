"""Running `indorch` as operators do: a process of its own against a real database, with extra env.

A command runs in a child forked from the test process (`indorch`): the console script's entry
point (`indorch.main.run`) with the command's arguments, environment, standard streams and exit
code, in a process of its own, but without a new interpreter's start-up and imports, which took
about a second per command here (most of these tests' time). The child imports the CLI's own
modules afresh (they make their consoles from the environment) and gets Python's default warning
filters and logging back (pytest's are not a command's). `indorch_process` runs the installed
script in a new interpreter: `start_indorch` (commands left running) and the entry point's tests.

`indorch_in_process` (and `ok_in_process`, `refused_in_process`) runs the same entry point in the
test process itself, under click's `CliRunner` isolation (the command's environment and standard
streams), for the tests of a command's behaviour (output, exit code, database): no fork and no
re-import of the CLI per command. What a new process would start with is set for the call and put
back after it: consoles made from the command's environment, Python's default warning filters
and logging, the program's `sys.argv`; the threads it leaves running are joined, as at exit.
`Background` runs a command left running (`--wait`, `--follow`) forked or as the installed script,
its standard output readable while it runs.
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
from collections.abc import Callable, Iterator, Sequence
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
# The Basic-auth password of the package's OpenCode server (conftest.py), and the variable an
# agent registered on it names (read by the commands that call the server).
OPENCODE_PASSWORD = "cli-agent-secret"
PASSWORD_VAR = "INDORCH_AGENT_PASSWORD_OC"
PASSWORD_ENV = {PASSWORD_VAR: OPENCODE_PASSWORD}
OUTPUT_POLL_SECONDS = 0.02
Runner = Callable[..., subprocess.CompletedProcess[str]]


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
    with tempfile.TemporaryDirectory(prefix="indorch-cli-") as streams:
        child = _fork_command(url, args, env, stdin, Path(streams))
        code = _wait(child, timeout, [INDORCH, *args])
        return _completed(args, code, Path(streams))


def _fork_command(
    url: str, args: Sequence[str], env: dict[str, str] | None, stdin: str | None, streams: Path
) -> int:
    """Forks the child that runs `indorch *args`, its standard streams files in `streams`."""
    for module in PRELOADED:
        importlib.import_module(module)
    paths = [streams / name for name in ("stdin", "stdout", "stderr")]
    paths[0].write_text(stdin or "")
    for path in paths[1:]:
        path.touch()
    child = os.fork()
    if child == 0:
        _run_command([INDORCH, *args], cli_env(url, env), paths, stdin is not None)
    return child


def _completed(args: Sequence[str], code: int, streams: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.CompletedProcess(
        [INDORCH, *args], code, (streams / "stdout").read_text(), (streams / "stderr").read_text()
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


def indorch_in_process(
    url: str, *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`indorch *args` run by its entry point in this process (see the module's docstring)."""
    from click.testing import CliRunner

    overrides = {
        key: value for key, value in cli_env(url, env).items() if os.environ.get(key) != value
    }
    threads = set(threading.enumerate())
    with (
        CliRunner().isolation(input=stdin, env=overrides) as (stdout, stderr, _),
        _as_a_new_process([INDORCH, *args]),
    ):
        code = _exit_code()
        for thread in set(threading.enumerate()) - threads:  # joined at a process's exit
            if not thread.daemon:
                thread.join()
        sys.stdout.flush()
        sys.stderr.flush()
    return subprocess.CompletedProcess(
        [INDORCH, *args],
        code,
        stdout.getvalue().decode(),
        stderr.getvalue().decode(errors="backslashreplace"),
    )


def ok_in_process(url: str, *args: str, env: dict[str, str] | None = None) -> str:
    return ok(url, *args, env=env, runner=indorch_in_process)


def refused_in_process(url: str, *args: str, env: dict[str, str] | None = None) -> str:
    return refused(url, *args, env=env, runner=indorch_in_process)


def _exit_code() -> int:
    """Runs the entry point as the interpreter would: its exit code, a traceback on stderr and
    exit 1 for an exception it lets through, a message on stderr and 1 for `sys.exit(text)`."""
    from indorch.main import run

    try:
        run()
    except SystemExit as exit_:
        if exit_.code is None or isinstance(exit_.code, int):
            return exit_.code or 0
        print(exit_.code, file=sys.stderr)
        return 1
    except Exception:
        traceback.print_exc()
        return 1
    return 0


@contextlib.contextmanager
def _as_a_new_process(argv: list[str]) -> Iterator[None]:
    """What a new `indorch` process starts with, set for one command and put back after it: its
    `sys.argv`; the CLI's consoles made now, from its environment and streams (as importing
    `indorch.output` makes them); Python's default warnings, printed on stderr; logging with no
    handler (the last resort prints warnings on stderr); click's help width (CliRunner sets 80)."""
    from click import formatting

    from indorch import output

    saved_argv, saved_width = sys.argv, formatting.FORCED_WIDTH
    root = logging.getLogger()
    saved_logging = (root.handlers[:], root.level, root.manager.disable)
    consoles = (output.console, output.error_console)
    with warnings.catch_warnings():
        warnings.resetwarnings()
        warnings.filterwarnings("default", category=DeprecationWarning, module="__main__")
        for category in (
            DeprecationWarning,
            PendingDeprecationWarning,
            ImportWarning,
            ResourceWarning,
        ):
            warnings.simplefilter("ignore", category, append=True)
        warnings.showwarning = warnings._showwarning_orig  # type: ignore[attr-defined]
        warnings._showwarnmsg_impl = _show_warning  # type: ignore[attr-defined]
        try:
            sys.argv, formatting.FORCED_WIDTH = argv, None
            root.handlers.clear()
            root.setLevel(logging.WARNING)
            logging.disable(logging.NOTSET)
            importlib.reload(output)
            _rebind(consoles, (output.console, output.error_console))
            yield
        finally:
            _rebind((output.console, output.error_console), consoles)
            output.console, output.error_console = consoles
            sys.argv, formatting.FORCED_WIDTH = saved_argv, saved_width
            root.handlers[:] = saved_logging[0]
            root.setLevel(saved_logging[1])
            logging.disable(saved_logging[2])


def _rebind(old: tuple[object, ...], new: tuple[object, ...]) -> None:
    """The CLI's modules that imported a console by name get the other one."""
    for name, module in list(sys.modules.items()):
        if name.split(".")[0] != CLI_PACKAGE or module is None:
            continue
        for attribute, value in list(vars(module).items()):
            for before, after in zip(old, new, strict=True):
                if value is before:
                    setattr(module, attribute, after)


def _show_warning(message: warnings.WarningMessage) -> None:
    """Python's own printing of a warning (pytest records them instead)."""
    (message.file or sys.stderr).write(warnings._formatwarnmsg(message))  # type: ignore[attr-defined]


class Background:
    """A command left running (`--wait`, `--follow`), its standard output in a file that the test
    reads while it runs: `forked` (as `indorch`) or `installed` (the script, a new interpreter)."""

    def __init__(self, args: Sequence[str], streams: tempfile.TemporaryDirectory[str]) -> None:
        self.args = [INDORCH, *args]
        self._streams = streams
        self._dir = Path(streams.name)
        self._child: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None

    @classmethod
    def forked(cls, url: str, *args: str) -> Background:
        started = cls(args, tempfile.TemporaryDirectory(prefix="indorch-cli-"))
        started._child = _fork_command(url, args, None, None, started._dir)
        return started

    @classmethod
    def installed(cls, url: str, *args: str) -> Background:
        started = cls(args, tempfile.TemporaryDirectory(prefix="indorch-cli-"))
        with (
            (started._dir / "stdout").open("wb") as out,
            (started._dir / "stderr").open("wb") as err,
        ):
            started._process = subprocess.Popen(
                started.args, env=cli_env(url), stdin=subprocess.DEVNULL, stdout=out, stderr=err
            )
        return started

    def stdout(self) -> str:
        return (self._dir / "stdout").read_text()

    def wait_for_output(self, text: str, timeout: float = 30) -> str:
        """Its standard output once it holds `text` (it flushes each line it prints)."""
        deadline = time.monotonic() + timeout
        while text not in (out := self.stdout()):
            if self._ended():
                raise AssertionError(f"it ended without printing {text!r}: {self.finish(0)}")
            assert time.monotonic() < deadline, f"{text!r} not printed in {timeout}s: {out!r}"
            time.sleep(OUTPUT_POLL_SECONDS)
        return out

    def finish(self, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Waits for its end (killed after `timeout`: TimeoutExpired) and cleans up."""
        try:
            if self._process is not None:
                self.returncode = self._process.wait(timeout)
            elif self._child is not None and self.returncode is None:
                self.returncode = _wait(self._child, timeout, self.args)
            assert self.returncode is not None
            return _completed(self.args[1:], self.returncode, self._dir)
        finally:
            self.kill()

    def kill(self) -> None:
        """Ends it if it still runs (no-op once it has ended) and removes its files."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        if self._child is not None and self.returncode is None:
            with contextlib.suppress(ProcessLookupError, ChildProcessError):
                os.kill(self._child, signal.SIGKILL)
                os.waitpid(self._child, 0)
            self.returncode = -signal.SIGKILL
        self._streams.cleanup()

    def _ended(self) -> bool:
        if self._process is not None:
            return self._process.poll() is not None
        assert self._child is not None
        if self.returncode is None:
            done, status = os.waitpid(self._child, os.WNOHANG)
            if done:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode is not None


def start_indorch(url: str, *args: str) -> subprocess.Popen[str]:
    """A command left running (--wait, --follow); the caller collects it with `communicate`."""
    return subprocess.Popen(
        [INDORCH, *args],
        env=cli_env(url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def ok(url: str, *args: str, env: dict[str, str] | None = None, runner: Runner = indorch) -> str:
    done = runner(url, *args, env=env)
    assert done.returncode == 0, (done.stdout, done.stderr)
    return done.stdout


def refused(
    url: str, *args: str, env: dict[str, str] | None = None, runner: Runner = indorch
) -> str:
    """Runs a command expected to be refused: exit 2 and exactly one line on stderr."""
    done = runner(url, *args, env=env)
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def one_line_error(done: subprocess.CompletedProcess[str] | Sequence[str]) -> str:
    stderr = done.stderr if isinstance(done, subprocess.CompletedProcess) else done[1]
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]
