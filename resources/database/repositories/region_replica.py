"""A tenant's session history as a region replicator reads it at home and applies it elsewhere.

Both sides are tenant-scoped (row-level security on PostgreSQL, the repositories' filter
everywhere): the replicator reads tenant T's sessions in T's scope in the home region and writes
them in T's scope in the replica region, so a replica can never receive another tenant's rows.

The cursor of a session's replica is its own `sessions.last_event_seq`: `apply` writes the
session's row (a snapshot read in the home region after its events up to that seq were
committed) together with those events, in one transaction, so in the replica the row's
`last_event_seq` is exactly the newest event it holds. A cursor kept that way survives a crash
or a cut link with the data it describes, and never runs ahead of it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, and_, or_, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from domain.errors import InvalidSetting
from resources.database.repositories.base import TenantScopedRepository
from resources.database.schema import SessionEventRow, SessionRow, TenantRow

SESSIONS: Table = SessionRow.__table__  # type: ignore[assignment]
EVENTS: Table = SessionEventRow.__table__  # type: ignore[assignment]
TENANTS: Table = TenantRow.__table__  # type: ignore[assignment]
# Every column but the row id: the replica numbers its own rows.
EVENT_COLUMNS = tuple(c.name for c in EVENTS.columns if c.name != "id")
EVENTS_PER_STATEMENT = 1000  # 9 parameters each: within the protocol's 65,535


@dataclass(frozen=True)
class SessionShipment:
    """One session's row and its events after the replica's cursor, ready to apply."""

    row: dict[str, Any]
    events: list[dict[str, Any]]
    after_seq: int  # the replica's cursor the events follow

    @property
    def session_id(self) -> str:
        return str(self.row["id"])

    @property
    def last_seq(self) -> int:
        return int(self.row["last_event_seq"])


def _require_postgres(session: Session) -> None:
    if session.get_bind().dialect.name != "postgresql":
        raise InvalidSetting("region database", "a region's database must be PostgreSQL")


def tenant_slugs(session: Session) -> list[str]:
    """Every tenant of this region (read as the operator: no tenant set)."""
    return list(session.scalars(select(TenantRow.slug).order_by(TenantRow.slug)))


def tenant_row(session: Session, slug: str) -> dict[str, Any] | None:
    found = session.execute(select(TENANTS).where(TENANTS.c.slug == slug)).mappings().first()
    return dict(found) if found else None


def ensure_tenant(session: Session, row: dict[str, Any]) -> None:
    """Create the tenant's row in the replica if it is missing (as the operator; a tenant that
    exists is left as it is: its state is the tenant-state channel's, see docs/multi-region.md)."""
    _require_postgres(session)
    session.execute(postgresql.insert(TENANTS).values(**row).on_conflict_do_nothing())


class RegionReplicaRepository(TenantScopedRepository):
    kind = "session"

    def session_heads(self) -> dict[str, int]:
        """Each of the tenant's sessions with the seq of its newest event."""
        query = select(SessionRow.id, SessionRow.last_event_seq).where(
            SessionRow.tenant_id == self.tenant_id
        )
        return {session_id: int(seq) for session_id, seq in self._session.execute(query)}

    def shipments(self, cursors: Mapping[str, int], limit: int) -> list[SessionShipment]:
        """Per session of `cursors` (id -> the replica's seq), its row and up to `limit` events
        after the cursor, in two queries; each row's `last_event_seq` is cut to the last event
        shipped, so row and events agree. A session gone at home is left out."""
        if not cursors:
            return []
        rows = {
            str(row["id"]): dict(row)
            for row in self._session.execute(
                select(SESSIONS).where(
                    SESSIONS.c.tenant_id == self.tenant_id, SESSIONS.c.id.in_(list(cursors))
                )
            ).mappings()
        }
        upto = {
            session_id: min(int(row["last_event_seq"]), cursors[session_id] + limit)
            for session_id, row in rows.items()
        }
        runs = [
            and_(EVENTS.c.session_id == sid, EVENTS.c.seq > cursors[sid], EVENTS.c.seq <= last)
            for sid, last in upto.items()
            if last > cursors[sid]
        ]
        events: dict[str, list[dict[str, Any]]] = {session_id: [] for session_id in rows}
        if runs:
            query = (
                select(*(EVENTS.c[name] for name in EVENT_COLUMNS))
                .where(EVENTS.c.tenant_id == self.tenant_id, or_(*runs))
                .order_by(EVENTS.c.session_id, EVENTS.c.seq)
            )
            for event in self._session.execute(query).mappings():
                events[event["session_id"]].append(dict(event))
        return [
            SessionShipment(
                {**row, "last_event_seq": upto[session_id]},
                events[session_id],
                cursors[session_id],
            )
            for session_id, row in sorted(rows.items())  # ids are time-ordered: parents first
        ]

    def apply(self, shipments: Sequence[SessionShipment]) -> list[str]:
        """Write the sessions' rows and insert their events, for each session whose cursor in
        the replica (its row locked meanwhile) is still the one its shipment follows; the ids
        of the sessions applied. An event already there (a redelivery) is skipped by its
        `(session_id, seq)` key, so nothing is ever stored twice."""
        for shipment in shipments:
            self._owned(shipment.row["tenant_id"])
        _require_postgres(self._session)
        ids = [shipment.session_id for shipment in shipments]
        locked = self._session.execute(
            select(SESSIONS.c.id, SESSIONS.c.last_event_seq)
            .where(SESSIONS.c.tenant_id == self.tenant_id, SESSIONS.c.id.in_(ids))
            .with_for_update()
        )
        current = {session_id: int(seq) for session_id, seq in locked}
        accepted = [s for s in shipments if current.get(s.session_id, 0) == s.after_seq]
        if not accepted:
            return []
        insert = postgresql.insert(SESSIONS).values([shipment.row for shipment in accepted])
        self._session.execute(
            insert.on_conflict_do_update(
                index_elements=[SESSIONS.c.id],
                set_={c.name: insert.excluded[c.name] for c in SESSIONS.columns if c.name != "id"},
                # a row inserted meanwhile by another replicator is overwritten only by a newer one
                where=SESSIONS.c.last_event_seq <= insert.excluded.last_event_seq,
            )
        )
        events = [{**event, "tenant_id": self.tenant_id} for s in accepted for event in s.events]
        for start in range(0, len(events), EVENTS_PER_STATEMENT):
            self._session.execute(
                postgresql.insert(EVENTS)
                .values(events[start : start + EVENTS_PER_STATEMENT])
                .on_conflict_do_nothing(index_elements=[EVENTS.c.session_id, EVENTS.c.seq])
            )
        return [shipment.session_id for shipment in accepted]
