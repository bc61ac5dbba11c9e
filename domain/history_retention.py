"""How long our own event history is kept, and which sessions' history may expire at all.

A session's history may expire once nothing can bring the session back: it reached a final state,
or a retryable one with no retries left (the retry sensor never takes it up again).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from domain.errors import InvalidInput
from domain.session import RETRYABLE_STATES, SESSION_MACHINE, SessionStatus

DEFAULT_RETENTION_DAYS = 90
FINAL_STATES: frozenset[SessionStatus] = SESSION_MACHINE.final_states
EXHAUSTIBLE_STATES: frozenset[SessionStatus] = RETRYABLE_STATES  # finished when out of retries


def expiry_cutoff(retention_days: int, now: datetime) -> datetime:
    """History of sessions finished before this instant has expired."""
    if retention_days < 1:
        raise InvalidInput("retention_days", "must be at least 1 day")
    return now - timedelta(days=retention_days)
