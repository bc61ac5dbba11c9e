"""CPU time and memory of a process tree, from /proc (Linux only).

The bench measures "control-plane" cost: a worker process and everything it starts (Dagster's
code server, run workers, step processes, log tailers). The conductor makes itself a *child
subreaper* (`prctl(PR_SET_CHILD_SUBREAPER)`), so a descendant whose parent exits first is
re-parented to the conductor instead of init; then every process of the tree is reaped by someone
inside the tree or by the conductor, and `wait4` hands over its exact CPU time (user + system,
its own and its reaped children's). Memory is sampled: the sum of the tree's resident sets
(VmRSS; shared pages are counted once per process, so the sum is an upper bound).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import threading
import time
from dataclasses import dataclass, field

PR_SET_CHILD_SUBREAPER = 36
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def become_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    ppid: int
    state: str
    cpu_seconds: float  # own user + system time
    children_cpu_seconds: float  # of its children it has reaped (waited for)
    rss_mb: float


def read_proc(pid: int) -> ProcInfo | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            raw = handle.read().decode(errors="replace")
        with open(f"/proc/{pid}/statm", "rb") as handle:
            resident_pages = int(handle.read().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    fields = raw.rsplit(")", 1)[1].split()
    # fields[0] is field 3 of proc(5): state, ppid, ..., utime (14), stime (15)
    cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    children = (int(fields[13]) + int(fields[14])) / CLOCK_TICKS
    return ProcInfo(pid, int(fields[1]), fields[0], cpu, children, resident_pages * PAGE_KB / 1024)


def all_processes() -> dict[int, ProcInfo]:
    found: dict[int, ProcInfo] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            info = read_proc(int(name))
            if info is not None:
                found[info.pid] = info
    return found


def cpu_seconds_of(command: str) -> float:
    """CPU time so far of the processes whose command name (/proc/PID/comm) is `command`, and
    of their children they reaped (`postgres`: the server, its live backends, and those that
    exited, which the server reaped)."""
    total = 0.0
    for pid, info in all_processes().items():
        try:
            with open(f"/proc/{pid}/comm", "rb") as handle:
                name = handle.read().decode(errors="replace").strip()
        except OSError:
            continue
        if name == command:
            total += info.cpu_seconds + info.children_cpu_seconds
    return total


# What a process of the measured tree is, by its command line: the first rule that matches.
ROLES = (
    ("instance_plugins.run_worker.worker", "run worker"),
    ("bench.worker", "bench worker"),  # the daemon's stand-in: sensor ticks, run queue, submits
    ("grpc", "code server"),
    ("code-server", "code server"),
)


def process_role(argv: list[str]) -> str:
    """What the process runs (`ROLES`), else its program's name."""
    for marker, role in ROLES:
        if marker in argv:
            return role
    return os.path.basename(argv[0]) if argv else "other"


def process_argv(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            raw = handle.read()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def cpu_by_role(
    before: dict[int, float], after: dict[int, float], roles: dict[int, str]
) -> dict[str, float]:
    """Own CPU seconds per role between two readings of each process (a process absent from
    `before` started in between)."""
    spent: dict[str, float] = {}
    for pid, cpu in after.items():
        role = roles.get(pid, "other")
        spent[role] = spent.get(role, 0.0) + cpu - before.get(pid, 0.0)
    return spent


def descendants(root: int, table: dict[int, ProcInfo]) -> list[ProcInfo]:
    children: dict[int, list[int]] = {}
    for info in table.values():
        children.setdefault(info.ppid, []).append(info.pid)
    out: list[ProcInfo] = []
    stack = [root]
    while stack:
        pid = stack.pop()
        if pid in table:
            out.append(table[pid])
        stack.extend(children.get(pid, []))
    return out


def rusage_seconds(usage: object) -> float:
    return float(usage.ru_utime + usage.ru_stime)  # type: ignore[attr-defined]


@dataclass
class TreeSample:
    at: float
    rss_mb: float
    processes: int


@dataclass
class TreeMonitor:
    """Samples one worker's process tree in a thread; reaps its orphans (we are the subreaper).

    `cpu_seconds()` after `finish()`: the worker's `wait4` rusage plus the rusage of every orphan
    of the tree reaped here, i.e. all CPU time of the tree, exact.
    """

    root: int
    interval: float = 0.2
    samples: list[TreeSample] = field(default_factory=list)
    seen: set[int] = field(default_factory=set)
    last_cpu: dict[int, float] = field(default_factory=dict)  # own CPU per pid, last sample
    roles: dict[int, str] = field(default_factory=dict)  # what each pid seen runs
    orphan_cpu: float = 0.0
    worker_cpu: float | None = None
    worker_status: int | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> TreeMonitor:
        self._thread = threading.Thread(target=self._loop, name="tree-monitor", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        me = os.getpid()
        while not self._stop.is_set():
            table = all_processes()
            tree = descendants(self.root, table)
            with self._lock:
                self.seen.update(info.pid for info in tree)
                orphans = [
                    info
                    for info in table.values()
                    if info.ppid == me and info.pid in self.seen and info.pid != self.root
                ]
                tree_pids = {info.pid for info in tree}
                live = tree + [info for info in orphans if info.pid not in tree_pids]
                rss = sum(info.rss_mb for info in live if info.state != "Z")
                self.last_cpu.update((info.pid, info.cpu_seconds) for info in live)
                for info in live:
                    if info.pid not in self.roles:
                        self.roles[info.pid] = process_role(process_argv(info.pid))
                self.samples.append(TreeSample(time.time(), rss, len(live)))
            for info in orphans:
                if info.state == "Z":
                    self._reap(info.pid, block=False)
            self._stop.wait(self.interval)

    def _reap(self, pid: int, block: bool) -> bool:
        try:
            waited, _status, usage = os.wait4(pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            return True
        if waited == 0:
            return False
        with self._lock:
            self.orphan_cpu += rusage_seconds(usage)
        return True

    def wait_worker(self) -> int:
        """Block until the worker exits; record its (and its reaped descendants') CPU time."""
        _pid, status, usage = os.wait4(self.root, 0)
        self.worker_cpu = rusage_seconds(usage)
        self.worker_status = os.waitstatus_to_exitcode(status)
        return self.worker_status

    def finish(self, grace_seconds: float = 15.0) -> None:
        """After the worker exited: wait for its orphans to exit (then kill them) and reap them."""
        deadline = time.monotonic() + grace_seconds
        me = os.getpid()
        while True:
            table = all_processes()
            with self._lock:
                self.seen.update(info.pid for info in descendants(self.root, table))
                left = [i for i in table.values() if i.ppid == me and i.pid in self.seen]
            for info in left:
                if info.state == "Z":
                    self._reap(info.pid, block=True)
            left = [i for i in left if i.state != "Z"]
            if not left:
                break
            if time.monotonic() > deadline:
                for info in left:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(info.pid, signal.SIGKILL)
                for info in left:
                    self._reap(info.pid, block=True)
                break
            time.sleep(0.2)
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def cpu_seconds(self) -> float:
        return (self.worker_cpu or 0.0) + self.orphan_cpu

    def sampled_cpu(self) -> float:
        """A cross-check from the samples alone: each process's own CPU as last seen (misses
        what a process used after its last sample)."""
        with self._lock:
            return sum(self.last_cpu.values())

    def cpu_so_far(self) -> float:
        """CPU time of the tree until now (own + reaped children of each live process, plus the
        orphans reaped here): subtract it at the start of a measured window."""
        tree = descendants(self.root, all_processes())
        with self._lock:
            reaped = self.orphan_cpu
        return reaped + sum(info.cpu_seconds + info.children_cpu_seconds for info in tree)

    def own_cpu(self) -> dict[int, float]:
        """Each process's own CPU as last sampled (a copy: subtract one from a later one)."""
        with self._lock:
            return dict(self.last_cpu)

    def cpu_by_role_since(self, before: dict[int, float]) -> dict[str, float]:
        """Own CPU per role (`process_role`) since `before` (an `own_cpu()`), from the samples:
        what a process used after its last sample is missed, as in `sampled_cpu`."""
        with self._lock:
            return {
                role: round(seconds, 2)
                for role, seconds in sorted(
                    cpu_by_role(before, self.last_cpu, self.roles).items(),
                    key=lambda item: -item[1],
                )
            }

    def rss_between(self, start: float, end: float) -> list[TreeSample]:
        with self._lock:
            return [s for s in self.samples if start <= s.at <= end]

    def peak(self) -> TreeSample | None:
        with self._lock:
            return max(self.samples, key=lambda s: s.rss_mb, default=None)
