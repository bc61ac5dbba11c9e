"""The run worker: one long-lived process that executes the instance's runs, each in a thread.

A run process costs ~120 MB before it supervises anything (Dagster, SQLAlchemy, httpx and the
code location, imported afresh by every run) and ~2 CPU-seconds to start. A wave holds its
sessions in ~0.07 MB each, so with one process per tenant wave the process is most of the memory.
The worker pays the imports once: runs launched by `RunWorkerLauncher` execute here, in threads,
through the same entry point a run process uses (`core_execute_run`), so each is still its own
Dagster run with its tags, queue limits, event log, compute logs and run monitoring.

Protocol, through the instance (no socket to secure):
- The launcher leaves the run STARTING and makes sure a worker serves the instance. Serving means
  holding the exclusive lock `<instance root>/run_worker/serve.lock`; one worker at a time does.
  The lock file holds the serving worker's pid: the launcher nudges it (SIGUSR1) to look for
  STARTING runs at once rather than at its next poll.
- The serving worker takes every STARTING run that no live worker has taken: it tags the run with
  its pid (`WORKER_PID_TAG`, read by the launcher's health check) and executes it in a thread.
- A run that turns CANCELING is interrupted in its thread (`DagsterExecutionInterruptedError`,
  as a run process's SIGTERM handler would raise); the launcher's `terminate` nudges the worker
  that runs it, so it sees the cancel at once. The poll (every `--poll-seconds`) is the fallback
  for a nudge missed.
- When the project's code changes on disk the worker stops serving (releases the lock) and exits
  once its runs end, so the next launch starts a worker with the new code. It also exits after
  `idle_exit_seconds` without runs.
- If the worker dies, its runs' health checks fail and run monitoring marks them failed, as for a
  dead run process (the run-failure sensor and lease adoption take it from there).

    python -m instance_plugins.run_worker.worker --directory DIR \
        [--poll-seconds S] [--idle-exit-seconds S]

reads the instance's serialized `InstanceRef` on stdin.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import gc
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:  # dagster is imported after the serve lock is known to be free (see main)
    from dagster import DagsterInstance, DagsterRun

WORKER_PID_TAG = "indorch/run_worker_pid"
# The run storage is read this often without a nudge (two queries each time, ~15 ms on the
# embedded SQLite storage): launches and cancels nudge, so this only bounds how long a missed
# nudge waits.
DEFAULT_POLL_SECONDS = 5.0
NUDGE_SIGNAL = signal.SIGUSR1  # "look at the run storage now": runs handed over or canceled
WORKER_MODULE = "instance_plugins.run_worker.worker"
SERVE_LOCK = "serve.lock"
WORKER_LOG = "worker.log"
CODE_CHECK_SECONDS = 2.0

log = logging.getLogger(__name__)
NUDGED = threading.Event()  # set by the nudge signal's handler


def worker_alive(pid: int) -> bool:
    """Whether `pid` is a live run worker (on Linux: not just a process that reused the number)."""
    if Path("/proc/self/cmdline").exists():
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False
        return WORKER_MODULE.encode() in cmdline
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def try_lock(path: Path) -> IO[bytes] | None:
    """The exclusive lock on `path`, held while the returned file stays open, or None if taken."""
    handle = open(path, "ab")  # noqa: SIM115 - the open file is the lock
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def take_serve_lock(directory: Path) -> IO[bytes] | None:
    """The serve lock of `directory`, naming this process in the file, or None if taken."""
    lock = try_lock(directory / SERVE_LOCK)
    if lock is not None:
        os.ftruncate(lock.fileno(), 0)
        lock.write(str(os.getpid()).encode())
        lock.flush()
    return lock


def serving_pid(directory: Path) -> int | None:
    """The pid the serving worker wrote into the lock file, if any."""
    try:
        text = (directory / SERVE_LOCK).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def nudge(directory: Path) -> None:
    """Tell the worker serving `directory` to look for STARTING runs now (best effort: a worker
    that misses it takes them at its next poll)."""
    pid = serving_pid(directory)
    if pid is not None:
        nudge_worker(pid)


def nudge_worker(pid: int) -> None:
    """Tell worker `pid` to look at the run storage now: runs handed over, runs to cancel."""
    if not worker_alive(pid):
        return
    with contextlib.suppress(OSError):  # gone meanwhile
        os.kill(pid, NUDGE_SIGNAL)


def is_served(directory: Path) -> bool:
    """Whether a worker holds the serve lock of `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    handle = try_lock(directory / SERVE_LOCK)
    if handle is None:
        return True
    handle.close()
    return False


@dataclass
class SourceWatch:
    """Modification times of the project's loaded modules: changed code needs a new worker."""

    roots: set[Path] = field(default_factory=set)
    mtimes: dict[str, int] = field(default_factory=dict)

    def add_root(self, root: Path) -> None:
        self.roots.add(root)

    def refresh(self) -> None:
        """Record modules loaded since; a file already recorded keeps the time first seen."""
        for path, mtime in self._scan().items():
            self.mtimes.setdefault(path, mtime)

    def _scan(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for module in list(sys.modules.values()):
            path = getattr(module, "__file__", None)
            if not path or "site-packages" in path:
                continue
            resolved = Path(path).resolve()
            if any(resolved.is_relative_to(root) for root in self.roots):
                try:
                    found[str(resolved)] = resolved.stat().st_mtime_ns
                except OSError:
                    continue
        return found

    def changed(self) -> bool:
        for path, mtime in self.mtimes.items():
            try:  # os.stat: a `Path` per module costs more than the stat itself
                if os.stat(path).st_mtime_ns != mtime:
                    return True
            except OSError:
                return True
        return False


class RunWorker:
    """Serves one Dagster instance: takes its STARTING runs and executes each in a thread."""

    def __init__(
        self,
        instance: DagsterInstance,
        directory: Path,
        poll_seconds: float,
        idle_exit_seconds: float,
    ) -> None:
        self.instance = instance
        self.directory = directory
        self.poll_seconds = poll_seconds
        self.idle_exit_seconds = idle_exit_seconds
        self.pid = os.getpid()
        self.threads: dict[str, threading.Thread] = {}
        self.interrupted: set[str] = set()
        self.taken: set[str] = set()
        self.lock: IO[bytes] | None = None
        self.watch = SourceWatch()
        self.stop = threading.Event()
        self.nudged = NUDGED
        self.shutdown_signal: int | None = None
        self.code_frozen = False  # the first run's modules moved out of the collector's way

    # -- serving ------------------------------------------------------------------------------
    def serve(self, lock: IO[bytes] | None = None) -> int:
        """Serve until stopped or idle; `lock`: the serve lock if already taken (see `main`)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.lock = lock or take_serve_lock(self.directory)
        if self.lock is None:
            log.info("run worker %s: another worker serves %s; exiting", self.pid, self.directory)
            return 0
        self._prepare_process()
        _freeze_long_lived()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._shut_down)
        log.info("run worker %s: serving %s", self.pid, self.instance.root_directory)
        last_busy = time.monotonic()
        next_code_check = time.monotonic() + CODE_CHECK_SECONDS
        while not self.stop.is_set():
            self._forget_ended()
            try:
                if self.lock is not None:
                    self._take_starting_runs()
                    if time.monotonic() >= next_code_check:
                        next_code_check = time.monotonic() + CODE_CHECK_SECONDS
                        if self.watch.changed():
                            log.info("run worker %s: the code changed; no new runs", self.pid)
                            self._stop_serving()
                self._interrupt_canceled()
            except Exception:
                # The run storage failed (a locked SQLite file, a dropped connection): the runs
                # under way do not depend on this loop, so it tries again at the next poll.
                log.exception("run worker %s: polling the run storage failed", self.pid)
            if self.threads:
                last_busy = time.monotonic()
            elif self.lock is None:
                break  # stopped serving and nothing left to finish
            elif time.monotonic() - last_busy >= self.idle_exit_seconds:
                if self._leave_when_idle():
                    break
                last_busy = time.monotonic()
            self.nudged.wait(self.poll_seconds)
            self.nudged.clear()
        if self.shutdown_signal is not None:
            self._stop_serving()
            self._interrupt(list(self.threads))
        for thread in list(self.threads.values()):
            thread.join()
        log.info("run worker %s: exiting", self.pid)
        return 0

    def _shut_down(self, signum: int, _frame: object) -> None:
        """SIGTERM/SIGINT: interrupt every run, as each run process would be (a Ctrl-C of the
        daemon's process group, a container's stop)."""
        log.info(
            "run worker %s: signal %s; interrupting %d runs", self.pid, signum, len(self.threads)
        )
        self.shutdown_signal = signum
        self.stop.set()
        self.nudged.set()

    def _prepare_process(self) -> None:
        from instance_plugins.run_worker import thread_streams

        # Each run's output is routed by its thread (the compute-log manager routes it).
        thread_streams.install()
        # Every run start rebuilds the instance's python_logs handlers with
        # logging.config.dictConfig, which is not safe while other threads log: build them once.
        handlers = list(self.instance.get_yaml_python_handlers())
        self.instance.get_yaml_python_handlers = lambda: handlers  # type: ignore[method-assign]

    def _stop_serving(self) -> None:
        if self.lock is not None:
            self.lock.close()
            self.lock = None

    def _leave_when_idle(self) -> bool:
        """Stop serving; but a run launched meanwhile (the launcher saw the lock held) is taken."""
        self._stop_serving()
        if not self._untaken_starting_runs():
            return True
        self.lock = take_serve_lock(self.directory)
        return self.lock is None  # another worker took over: it takes the run

    # -- runs ---------------------------------------------------------------------------------
    def _untaken_starting_runs(self) -> list[DagsterRun]:
        from dagster import DagsterRunStatus, RunsFilter

        runs = self.instance.get_runs(filters=RunsFilter(statuses=[DagsterRunStatus.STARTING]))
        untaken = []
        for run in runs:
            if run.run_id in self.taken:
                continue
            owner = run.tags.get(WORKER_PID_TAG)
            if owner and int(owner) != self.pid and worker_alive(int(owner)):
                continue  # another live worker took it and has not started it yet
            untaken.append(run)
        return untaken

    def _take_starting_runs(self) -> None:
        for run in self._untaken_starting_runs():
            self.taken.add(run.run_id)
            origin = run.job_code_origin
            working_directory = origin and origin.repository_origin.code_pointer.working_directory
            if working_directory:
                self.watch.add_root(Path(working_directory).resolve())
            self.instance.add_run_tags(run.run_id, {WORKER_PID_TAG: str(self.pid)})
            thread = threading.Thread(
                target=self._execute,
                args=(run.run_id,),
                name=f"run-{run.run_id[:8]}",
            )
            self.threads[run.run_id] = thread
            thread.start()

    def _execute(self, run_id: str) -> None:
        from instance_plugins.dagster_internals import (
            EngineEventData,
            core_execute_run,
            recon_job_from_origin,
            serializable_error_info_from_exc_info,
        )

        run = self.instance.get_run_by_id(run_id)
        if run is None:
            log.error("run worker %s: run %s vanished before it started", self.pid, run_id)
            return
        try:
            if run.job_code_origin is None:
                raise ValueError("the run has no code origin to load its job from")
            recon_job = recon_job_from_origin(run.job_code_origin)
            thread = threading.current_thread().name
            self.instance.report_engine_event(
                f"Started in the run worker (pid {self.pid}, thread {thread}).",
                run,
                EngineEventData.in_process(self.pid),
            )
        except Exception:
            # Nothing of Dagster's has run yet, so nothing has ended the run: end it here.
            error = serializable_error_info_from_exc_info(sys.exc_info())
            self.instance.report_engine_event(
                f"The run worker could not start the run: {error.message}",
                run,
                EngineEventData.engine_error(error),
            )
            self.instance.report_run_failed(run)
            log.exception("run worker %s: run %s could not start", self.pid, run_id)
            return
        try:
            for _event in core_execute_run(recon_job, run, self.instance, inject_env_vars=True):
                pass
        except BaseException:
            # core_execute_run has written the failure to the run's event log and ended the run;
            # the worker carries on with its other runs.
            log.exception("run worker %s: run %s ended with an error", self.pid, run_id)

    def _forget_ended(self) -> None:
        for run_id, thread in list(self.threads.items()):
            if not thread.is_alive():
                del self.threads[run_id]
                self.interrupted.discard(run_id)
                self.watch.refresh()  # the modules its job loaded are watched from now on
        if not self.threads and self.taken and not self.code_frozen:
            self.code_frozen = True
            _freeze_long_lived()  # the code location the first run loaded, no run's objects

    def _interrupt_canceled(self) -> None:
        from dagster import DagsterRunStatus, RunsFilter

        active = [run_id for run_id in self.threads if run_id not in self.interrupted]
        if not active:
            return
        canceling = self.instance.get_runs(
            filters=RunsFilter(run_ids=active, statuses=[DagsterRunStatus.CANCELING])
        )
        self._interrupt([run.run_id for run in canceling])

    def _interrupt(self, run_ids: list[str]) -> None:
        from dagster import DagsterExecutionInterruptedError

        for run_id in run_ids:
            thread = self.threads.get(run_id)
            if thread is None or thread.ident is None or run_id in self.interrupted:
                continue
            log.info("run worker %s: interrupting run %s", self.pid, run_id)
            self.interrupted.add(run_id)
            _raise_in_thread(thread.ident, DagsterExecutionInterruptedError)


def _freeze_long_lived() -> None:
    """Leave what is loaded now (Dagster, the code location: ~1 M objects) out of the cyclic
    collector's full passes, which walked all of it a few times in every burst (~0.1 s each).
    Between runs only: a live run's objects may still become garbage."""
    gc.collect()
    gc.freeze()


def _raise_in_thread(ident: int, error: type[BaseException]) -> None:
    """Raise `error` in the thread `ident` at its next Python instruction (a run's SIGTERM)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(error))


def _parse(argv: Iterable[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m {WORKER_MODULE}")
    parser.add_argument("--directory", type=Path, required=True)
    parser.add_argument("--poll-seconds", type=float, default=DEFAULT_POLL_SECONDS)
    parser.add_argument("--idle-exit-seconds", type=float, default=60.0)
    return parser.parse_args(list(argv))


def main(argv: Iterable[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    # The lock before the imports: a second worker started in a race leaves at once, and the
    # launch that started this one (it waits until a worker serves) need not wait for Dagster's
    # imports (~1 s, more on a busy machine): the run queue goes on launching meanwhile, and the
    # runs are taken at the first poll. Should the start fail after this, the runs left
    # STARTING are failed by run monitoring's start timeout.
    # A nudge (see `nudge`) may come as soon as the lock file names this process.
    signal.signal(NUDGE_SIGNAL, lambda _signum, _frame: NUDGED.set())
    args.directory.mkdir(parents=True, exist_ok=True)
    lock = take_serve_lock(args.directory)
    if lock is None:
        return 0
    from dagster import DagsterInstance, deserialize_value

    from instance_plugins.dagster_internals import InstanceRef

    ref = deserialize_value(sys.stdin.read(), InstanceRef)
    with DagsterInstance.from_ref(ref) as instance:
        worker = RunWorker(instance, args.directory, args.poll_seconds, args.idle_exit_seconds)
        return worker.serve(lock)


if __name__ == "__main__":
    sys.exit(main())
