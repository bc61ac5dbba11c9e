"""A long-lived wave: while it runs, it takes on its tenant's new sessions itself.

Starting a run costs seconds and ~100 MB; a tenant's sessions keep arriving. So a wave with room
(fewer than `size` sessions) adopts the tenant's unsupervised sessions and claims its next due
sessions every `every_seconds`, as its
own lease owner, until `until` (its run's runtime budget: a session is only taken on if its max
duration ends before then); with nothing to supervise and nothing to claim for
`linger_seconds`, it ends. The dispatcher leaves a tenant's new sessions to its live waves for a
grace period and launches new waves only for those left behind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.session_service import SessionService

# (room, longest allowed max duration in seconds) -> ids of the sessions claimed
ClaimNext = Callable[[int, float], list[str]]


@dataclass(frozen=True)
class TopUp:
    claim: ClaimNext
    size: int
    until: datetime
    every_seconds: float = 1.0
    linger_seconds: float = 10.0


def claim_next_for(service: SessionService, tenant: str, owner: str, lease: timedelta) -> ClaimNext:
    """Claims leased to the wave `owner`: first the tenant's unsupervised sessions (their wave
    run died: adopted here rather than by a new run that would wait for the tenant's run-queue
    slot this wave holds), then its due sessions (within its quota)."""

    def claim(room: int, within_seconds: float) -> list[str]:
        if not service.anything_for_a_wave(tenant, within_seconds):
            return []  # most looks: one transaction instead of one per kind of work
        adopted = service.lease_unsupervised(tenant, room, lease, lambda sessions: owner)
        ids = [session.id for session in adopted.sessions]
        if room > len(ids):
            claimed = service.claim_pending(
                tenant,
                room - len(ids),
                lease,
                lambda sessions: owner,
                max_duration_seconds=within_seconds,
            )
            ids += [session.id for session in claimed.sessions]
        return ids

    return claim
