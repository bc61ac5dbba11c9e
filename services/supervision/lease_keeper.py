"""A wave's hold on its sessions: one statement renews all their leases; a followed session the
renewal did not hold was taken over (another wave adopted it, or it was paused or stopped)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

from domain.supervision_policy import SupervisionSettings
from resources.database import Database, tenant_scope, unit_of_work
from services.session_outcome import SessionOutcome, outcome_of
from services.supervision.followed_session import SUPERVISED, FollowedSession
from services.supervision.session_recorder import SessionRecorder

logger = logging.getLogger(__name__)


class LeaseKeeper:
    def __init__(
        self,
        database: Database,
        tenant: str,
        owner: str,
        recorder: SessionRecorder,
        settings: SupervisionSettings,
        clock: Callable[[], datetime],
    ) -> None:
        self._database = database
        self._tenant = tenant
        self._owner = owner
        self._recorder = recorder
        self._settings = settings
        self._clock = clock
        self._following: dict[str, FollowedSession] = {}

    @contextmanager
    def following(self, sup: FollowedSession) -> Iterator[None]:
        """While the block runs, renewals tell `sup` whether the wave still holds it."""
        self._following[sup.session.id] = sup
        try:
            yield
        finally:
            del self._following[sup.session.id]

    async def renew_periodically(self) -> None:
        """Every `renew_every`, one statement extends the leases of all the wave's sessions
        (waiting for an agent, or followed); a followed session it did not hold is checked."""
        with tenant_scope(self._tenant):
            while True:
                await asyncio.sleep(self._settings.renew_every.total_seconds())
                until = self._clock() + self._settings.lease
                try:
                    with unit_of_work(self._database) as uow:
                        held = uow.sessions.renew_leases(self._owner, until)
                except Exception as error:  # the next round retries; the lease outlasts three
                    logger.warning(
                        "tenant %s: lease renewal of wave %s failed: %r",
                        self._tenant,
                        self._owner,
                        error,
                    )
                    continue
                for session_id, sup in self._following.items():
                    if session_id in held:
                        sup.session.lease_expires_at = until
                    else:
                        sup.lease_lost = True

    def taken_over(self, sup: FollowedSession) -> SessionOutcome | None:
        """After a renewal that did not hold `sup`: its outcome if it is no longer the wave's."""
        if not sup.lease_lost:
            return None
        sup.lease_lost = False
        current = self._recorder.load(sup.session.id)
        if current.status not in SUPERVISED or current.lease_owner != self._owner:
            return outcome_of(current, f"taken over: {current.status.value}")
        return None
