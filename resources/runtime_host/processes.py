"""Detached runtime processes on this host: start, liveness (pid reuse guarded), stop, memory.

A runtime outlives the command that started it (`indorch runtime start` exits), so it runs in
its own session and process group; it is known afterwards by its pid and its start time (field
22 of /proc/<pid>/stat), so a recycled pid is never taken for it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

STOP_GRACE_SECONDS = 5.0
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


@dataclass(frozen=True)
class ProcessHandle:
    pid: int
    start_ticks: int


def launch_detached(
    argv: Sequence[str], env: Mapping[str, str], log_path: Path, cwd: Path | str = "/"
) -> ProcessHandle:
    """Start `argv` in a new session, output appended to `log_path` (created 0600)."""
    descriptor = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        process = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=descriptor,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        os.close(descriptor)
    return ProcessHandle(process.pid, start_ticks(process.pid) or 0)


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, None when there is no such process
    (or only its zombie)."""
    fields = _stat_fields(pid)
    if fields is None or fields[0] == "Z":
        return None
    return int(fields[19])


def is_alive(handle: ProcessHandle) -> bool:
    _reap(handle.pid)
    return start_ticks(handle.pid) == handle.start_ticks


def stop(handle: ProcessHandle, grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM to the process and all its descendants, SIGKILL after `grace`; nothing when it
    is gone already. Descendants, not the process group: the sandboxed server runs in a session
    of its own (bwrap --new-session) inside its own pid namespace."""
    if not is_alive(handle):
        return
    tree = process_tree(handle.pid)
    _signal_all(tree, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _any_alive(tree):
        _reap(handle.pid)
        time.sleep(0.1)
    _signal_all(process_tree(handle.pid) + tree, signal.SIGKILL)
    for _ in range(50):
        _reap(handle.pid)
        if not _any_alive(tree):
            return
        time.sleep(0.1)


def kill(handle: ProcessHandle) -> None:
    """Abruptly, the whole tree, as a crash would (fault tests, the bench)."""
    if is_alive(handle):
        _signal_all(process_tree(handle.pid), signal.SIGKILL)
        for _ in range(50):
            _reap(handle.pid)
            if not is_alive(handle):
                return
            time.sleep(0.1)


def process_tree(pid: int) -> list[int]:
    """The process and its descendants (parents first)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry))
    tree, pending = [], [pid]
    while pending:
        current = pending.pop(0)
        tree.append(current)
        pending.extend(children.get(current, []))
    return tree


def resident_kb(pid: int) -> int:
    """Resident memory of the process and all its descendants, in KiB."""
    total = 0
    for member in process_tree(pid):
        fields = _stat_fields(member)
        if fields is not None:
            total += int(fields[21]) * PAGE_KB
    return total


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat after the command name: state, ppid, ... (state is index 0)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _any_alive(pids: list[int]) -> bool:
    return any((fields := _stat_fields(pid)) is not None and fields[0] != "Z" for pid in pids)


def _signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)
