"""Whether the Dagster daemon is running: its heartbeats, read from the instance's storage.

The daemon writes a heartbeat per daemon type (sensors, schedules, the run queue, ...) about
every 30 s into the instance's run storage; a required type whose last beat is older than
`tolerance_seconds` (or that never beat) means sessions are not being dispatched. Dagster is
imported on the first check only: the API process does not pay for it at start-up.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import dagster as dg

DEFAULT_TOLERANCE_SECONDS = 90.0  # three missed beats
_instances: dict[str, dg.DagsterInstance] = {}
_lock = threading.Lock()


def _instance(dagster_home: str) -> dg.DagsterInstance:
    with _lock:
        if dagster_home not in _instances:
            from dagster import DagsterInstance

            _instances[dagster_home] = DagsterInstance.from_config(dagster_home)
        return _instances[dagster_home]


def preload(dagster_home: str) -> None:
    """Open the instance in the background (Dagster's import takes seconds), so that the first
    readiness check is not the one that waits for it."""
    threading.Thread(
        target=_instance, args=(dagster_home,), name="dagster-instance", daemon=True
    ).start()


def stale_daemons(dagster_home: str, tolerance_seconds: float) -> list[str]:
    """The required daemon types without a heartbeat in the last `tolerance_seconds`."""
    instance = _instance(dagster_home)
    beats = instance.get_daemon_heartbeats()
    now = time.time()
    return sorted(
        daemon
        for daemon in instance.get_required_daemon_types()
        if daemon not in beats or now - beats[daemon].timestamp > tolerance_seconds
    )


def check_daemon(dagster_home: str, tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS) -> None:
    """Raises `DaemonNotBeating` naming the silent daemon types (for `resources.health.Probe`)."""
    stale = stale_daemons(dagster_home, tolerance_seconds)
    if stale:
        raise DaemonNotBeating(stale, tolerance_seconds)


class DaemonNotBeating(Exception):
    def __init__(self, daemons: list[str], tolerance_seconds: float) -> None:
        super().__init__(f"no heartbeat in {tolerance_seconds:g} s from: {', '.join(daemons)}")
