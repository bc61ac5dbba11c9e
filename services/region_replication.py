"""Shipping tenants' session history from their home region to a replica (docs/multi-region.md).

A pass, per tenant: compare each session's newest seq at home with the replica's (the replica's
own `sessions.last_event_seq`, see `resources.database.repositories.region_replica`), read the
sessions that are behind at home, apply them in the replica in one transaction, then publish the
applied events to the replica region's Redis streams, so its SSE readers see them live.

- **No duplicate**: an event is inserted with `ON CONFLICT (session_id, seq) DO NOTHING`, so a
  pass repeated after a crash, a cut link or a lost commit acknowledgement adds nothing twice.
- **No gap**: a session's events are applied only as the contiguous run after the replica's
  cursor, with the row that names its end, in one transaction, and only if the replica's row
  still has the cursor the run follows (checked with the row locked); a run with a hole (history
  pruned at home) is held back and reported, never applied. The replicator remembers the
  replica's cursors between passes (one read of the replica per tenant, not per pass); a
  refused apply or a failure makes it read them again.
- **The link**: a failed pass (either database unreachable) changes nothing that was not
  committed; `run` logs it, waits (doubling up to `MAX_BACKOFF_SECONDS`) and tries again from
  the replica's cursors. Events the replica's Redis did not take wait in memory (bounded) and go
  first on the next pass; past the bound, or after a restart, the replica's live readers find
  them in its database (they fill gaps and resync from it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Protocol

from sqlalchemy.exc import DBAPIError

from domain.events import SessionEvent
from resources.database import Database, tenant_scope, unit_of_work
from resources.database.repositories.region_replica import (
    RegionReplicaRepository,
    SessionShipment,
    ensure_tenant,
    tenant_row,
    tenant_slugs,
)

logger = logging.getLogger(__name__)

SESSIONS_PER_PASS = 100  # per tenant
EVENTS_PER_SESSION = 500  # per pass; a session further behind continues in the next pass
MAX_UNPUBLISHED = 100_000
PUBLISH_BATCH = 500
FIRST_BACKOFF_SECONDS = 0.2
MAX_BACKOFF_SECONDS = 2.0


class LivePublisher(Protocol):
    """What the replica region's live streams take (`RedisEventPublisher.deliver_many`)."""

    def deliver_many(self, events: Sequence[SessionEvent]) -> bool: ...


@dataclass
class ReplicationPass:
    """What one pass did."""

    sessions: int = 0  # sessions that received events or a newer row
    events: int = 0  # events shipped (a redelivered one counts, the replica skips it)
    held_back: list[str] = field(default_factory=list)  # sessions whose home history has a hole
    refused: int = 0  # shipments the replica refused (its cursor had moved): shipped again
    seconds: float = 0.0  # how long the pass took
    published: int = 0
    unpublished: int = 0  # waiting for the replica's Redis

    @property
    def idle(self) -> bool:
        """Nothing shipped and nothing left to ship again at once."""
        return self.events == 0 and self.sessions == 0 and self.refused == 0

    def as_record(self) -> dict[str, Any]:
        return {
            "sessions": self.sessions,
            "events": self.events,
            "held_back": len(self.held_back),
            "refused": self.refused,
            "published": self.published,
            "unpublished": self.unpublished,
            "seconds": round(self.seconds, 3),
        }


def _event(row: dict[str, Any]) -> SessionEvent:
    return SessionEvent(
        session_id=row["session_id"],
        tenant_id=row["tenant_id"],
        seq=row["seq"],
        event_type=row["event_type"],
        old_status=row["old_status"],
        new_status=row["new_status"],
        reason=row["reason"],
        data=row["data"],
        at=row["created_at"],
    )


def _contiguous(shipment: SessionShipment, after_seq: int) -> bool:
    seqs = [int(event["seq"]) for event in shipment.events]
    return seqs == list(range(after_seq + 1, shipment.last_seq + 1))


class RegionReplicator:
    """Replicates the session history of `tenants` (None: every tenant of `home`) from `home`
    to `replica`, publishing what it applies to `publisher` (None: the replica has no Redis)."""

    def __init__(
        self,
        home: Database,
        replica: Database,
        publisher: LivePublisher | None = None,
        *,
        tenants: Collection[str] | None = None,
        events_per_session: int = EVENTS_PER_SESSION,
    ) -> None:
        self._home = home
        self._replica = replica
        self._publisher = publisher
        self._tenants = sorted(tenants) if tenants else None
        self._events_per_session = events_per_session
        self._known_tenants: set[str] = set()
        # The replica's cursors as last read or written: the replica is read again only after
        # a failure or a refused apply (its own rows stay the truth, checked at every apply).
        self._replica_heads: dict[str, dict[str, int]] = {}
        self._unpublished: deque[SessionEvent] = deque(maxlen=MAX_UNPUBLISHED)

    def run_pass(self) -> ReplicationPass:
        """One pass over every tenant; raises `DBAPIError` when a database does not answer."""
        started = time.monotonic()
        done = ReplicationPass()
        done.published += self._publish_waiting()
        try:
            for tenant in self._tenant_list():
                self._ensure_tenant(tenant)
                self._replicate_tenant(tenant, done)
        except DBAPIError:
            self._replica_heads.clear()  # a commit may or may not have happened: read again
            raise
        done.published += self._publish_waiting()
        done.unpublished = len(self._unpublished)
        done.seconds = time.monotonic() - started
        return done

    def catch_up(self, max_passes: int = 1000) -> ReplicationPass:
        """Passes until one ships nothing (at most `max_passes`): what they did, together."""
        total = ReplicationPass()
        for _ in range(max_passes):
            done = self.run_pass()
            total.sessions += done.sessions
            total.events += done.events
            total.held_back += done.held_back
            total.published += done.published
            total.refused += done.refused
            total.seconds += done.seconds
            total.unpublished = done.unpublished
            if done.idle:
                break
        return total

    def run(
        self,
        stop: threading.Event,
        interval: float,
        on_pass: Callable[[ReplicationPass], None] | None = None,
    ) -> None:
        """Pass after pass until `stop` is set: at once while there is more to ship, else every
        `interval` seconds; an unreachable database is waited out (see the module's docstring)."""
        backoff = FIRST_BACKOFF_SECONDS
        while not stop.is_set():
            try:
                done = self.run_pass()
            except DBAPIError as error:
                logger.warning(
                    "replication pass failed, retrying in %.1f s: %s", backoff, error.orig
                )
                stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                continue
            backoff = FIRST_BACKOFF_SECONDS
            if on_pass is not None:
                on_pass(done)
            if done.idle:
                stop.wait(interval)

    def _tenant_list(self) -> list[str]:
        if self._tenants is not None:
            return self._tenants
        with unit_of_work(self._home) as uow:
            return tenant_slugs(uow.session)

    def _ensure_tenant(self, tenant: str) -> None:
        if tenant in self._known_tenants:
            return
        with unit_of_work(self._home) as uow:
            row = tenant_row(uow.session, tenant)
        if row is None:
            return
        with unit_of_work(self._replica) as uow:
            ensure_tenant(uow.session, row)
        self._known_tenants.add(tenant)

    def _replicate_tenant(self, tenant: str, done: ReplicationPass) -> None:
        """One transaction at home (which sessions are behind, their rows and events), one in
        the replica (apply), at most `SESSIONS_PER_PASS` sessions; `run` goes on at once while
        a pass shipped something."""
        with tenant_scope(tenant):
            cursors = self._replica_heads.get(tenant)
            if cursors is None:
                with unit_of_work(self._replica) as uow:
                    cursors = RegionReplicaRepository(uow.session).session_heads()
                self._replica_heads[tenant] = cursors
            with unit_of_work(self._home) as uow:
                home = RegionReplicaRepository(uow.session)
                behind = sorted(  # ids are time-ordered: a parent before its children
                    session_id
                    for session_id, seq in home.session_heads().items()
                    if seq > cursors.get(session_id, 0)
                )[:SESSIONS_PER_PASS]
                wanted = {session_id: cursors.get(session_id, 0) for session_id in behind}
                shipments = home.shipments(wanted, self._events_per_session)
            complete = []
            for shipment in shipments:
                if _contiguous(shipment, shipment.after_seq):
                    complete.append(shipment)
                else:
                    logger.warning(
                        "session %s: its home history has a hole after seq %d",
                        shipment.session_id,
                        shipment.after_seq,
                    )
                    done.held_back.append(shipment.session_id)
            if complete:
                self._apply(tenant, complete, cursors, done)

    def _apply(
        self,
        tenant: str,
        shipments: list[SessionShipment],
        cursors: dict[str, int],
        done: ReplicationPass,
    ) -> None:
        with unit_of_work(self._replica) as uow:
            applied = set(RegionReplicaRepository(uow.session).apply(shipments))
        events: list[SessionEvent] = []
        for shipment in shipments:
            if shipment.session_id in applied:
                cursors[shipment.session_id] = shipment.last_seq
                events += [_event(event) for event in shipment.events]
        done.sessions += len(applied)
        done.refused += len(shipments) - len(applied)
        done.events += len(events)
        if len(applied) < len(shipments):
            del self._replica_heads[tenant]  # the replica moved: the next pass reads its cursors
        self._unpublished.extend(events)
        done.published += self._publish_waiting()

    def _publish_waiting(self) -> int:
        """Publish the waiting events in order, `PUBLISH_BATCH` a round trip; stop at the first
        batch that Redis does not take (it waits for the next pass)."""
        if self._publisher is None:
            self._unpublished.clear()
            return 0
        published = 0
        while self._unpublished:
            batch = list(islice(self._unpublished, PUBLISH_BATCH))
            if not self._publisher.deliver_many(batch):
                break
            for _ in batch:
                self._unpublished.popleft()
            published += len(batch)
        return published
