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

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from domain.errors import InvalidSetting
from resources.database.repositories.base import TenantScopedRepository
from resources.database.schema import SessionEventRow, SessionRow, TenantRow

SESSIONS: Table = SessionRow.__table__  # type: ignore[assignment]
EVENTS: Table = SessionEventRow.__table__  # type: ignore[assignment]
TENANTS: Table = TenantRow.__table__  # type: ignore[assignment]
EVENT_COLUMNS = tuple(
    c.name for c in EVENTS.columns if c.name != "id"
)  # the replica numbers its own rows


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

    def shipment(self, session_id: str, after_seq: int, limit: int) -> SessionShipment | None:
        """The session's row and up to `limit` events after `after_seq`; the row's
        `last_event_seq` is cut to the last event shipped, so row and events agree. None when
        the session is gone."""
        row = (
            self._session.execute(
                select(SESSIONS).where(
                    SESSIONS.c.tenant_id == self.tenant_id, SESSIONS.c.id == session_id
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            return None
        upto = min(int(row["last_event_seq"]), after_seq + limit)
        events = [
            dict(event)
            for event in self._session.execute(
                select(*(EVENTS.c[name] for name in EVENT_COLUMNS))
                .where(
                    EVENTS.c.tenant_id == self.tenant_id,
                    EVENTS.c.session_id == session_id,
                    EVENTS.c.seq > after_seq,
                    EVENTS.c.seq <= upto,
                )
                .order_by(EVENTS.c.seq)
            ).mappings()
        ]
        return SessionShipment({**row, "last_event_seq": upto}, events, after_seq)

    def apply(self, shipments: Sequence[SessionShipment]) -> list[str]:
        """Write each session's row and insert its events, if the replica's cursor is still
        the one the shipment follows (a conditional upsert, as every state change here); the
        ids of the sessions applied. An event already there (a redelivery) is skipped by its
        `(session_id, seq)` key, so nothing is ever stored twice."""
        _require_postgres(self._session)
        applied: list[str] = []
        for shipment in shipments:
            self._owned(shipment.row["tenant_id"])
            insert = postgresql.insert(SESSIONS).values(**shipment.row)
            follows = (SESSIONS.c.last_event_seq == shipment.after_seq) & (
                SESSIONS.c.version <= insert.excluded.version
            )
            written = self._session.execute(
                insert.on_conflict_do_update(
                    index_elements=[SESSIONS.c.id],
                    set_={
                        c.name: insert.excluded[c.name] for c in SESSIONS.columns if c.name != "id"
                    },
                    where=follows,
                ).returning(SESSIONS.c.id)
            ).first()
            if written is None:
                continue  # the replica moved on (or back): the caller re-reads its cursors
            applied.append(shipment.session_id)
            if shipment.events:
                self._session.execute(
                    postgresql.insert(EVENTS)
                    .values([{**event, "tenant_id": self.tenant_id} for event in shipment.events])
                    .on_conflict_do_nothing(index_elements=[EVENTS.c.session_id, EVENTS.c.seq])
                )
        return applied
