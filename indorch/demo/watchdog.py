"""The demo's last line of defence: stops every process of the demo once the driver is gone.

Every process the demo starts (and everything those start) carries ``INDORCH_DEMO_ID`` in its
environment, except the tenants' runtimes (their environment is built from nothing): those are
known by a marker, their root directory, in their command line (``INDORCH_DEMO_MARKER`` in the
watchdog's environment). The driver starts this watchdog first, in its own session, holding the
write end of a pipe to its standard input; when the driver exits by any means (SIGKILL included)
the pipe closes, and the watchdog terminates (SIGTERM, then SIGKILL) whatever still carries the
id or the marker. After
a clean stop there is nothing left to find and it just exits. Linux only (/proc); elsewhere it
finds nothing. Standard library only, so it starts fast.

    python -m indorch.demo.watchdog <demo id>
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

DEMO_ID_VAR = "INDORCH_DEMO_ID"
MARKER_VAR = "INDORCH_DEMO_MARKER"
GRACE_SECONDS = 3.0


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    command: str


def leftover_processes(demo_id: str, marker: str = "") -> list[ProcessInfo]:
    """Live processes whose environment carries ``INDORCH_DEMO_ID=<demo_id>``, or whose command
    line holds `marker` (not this one). Zombies are not counted: they run nothing and hold no
    port."""
    proc = Path("/proc")
    if not demo_id or not proc.is_dir():
        return []
    needle = f"{DEMO_ID_VAR}={demo_id}".encode()
    found: list[ProcessInfo] = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            raw_command = (entry / "cmdline").read_bytes()
            marked = bool(marker) and marker.encode() in raw_command
            if not marked and needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            stat = (entry / "stat").read_text()
            if stat[stat.rindex(")") + 2 :].startswith("Z"):
                continue
            command = raw_command.replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone meanwhile, or not ours to read
            continue
        found.append(ProcessInfo(int(entry.name), command.strip()[:200]))
    return found


def signal_leftovers(demo_id: str, signum: int, marker: str = "") -> list[ProcessInfo]:
    found = leftover_processes(demo_id, marker)
    for info in found:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(info.pid, signum)
    return found


def terminate_leftovers(
    demo_id: str, marker: str = "", grace_seconds: float = GRACE_SECONDS
) -> list[ProcessInfo]:
    """SIGTERM whatever of the demo is alive, SIGKILL what outlives the grace; returns the first
    list found (empty: nothing was left)."""
    found = signal_leftovers(demo_id, signal.SIGTERM, marker)
    deadline = time.monotonic() + grace_seconds
    while found and leftover_processes(demo_id, marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    signal_leftovers(demo_id, signal.SIGKILL, marker)
    return found


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.exit("usage: python -m indorch.demo.watchdog <demo id>")
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)  # only the pipe's end ends the watch
    while sys.stdin.buffer.read(4096):  # the driver never writes: this returns at its exit
        pass
    terminate_leftovers(args[0], os.environ.get(MARKER_VAR, ""))


if __name__ == "__main__":
    main()
