"""The append-only transition history of tasks and fine-tuning jobs."""

from __future__ import annotations

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from domain.events import StatusChanged
from resources.database.schema import StatusEventRow


def record_status_event(session: Session, tenant_id: str, event: StatusChanged) -> None:
    session.execute(
        insert(StatusEventRow).values(
            tenant_id=tenant_id,
            entity_kind=event.entity_kind,
            entity_id=event.entity_id,
            old_status=event.old_status,
            new_status=event.new_status,
            reason=event.reason,
            data=event.data,
            created_at=event.at,
        )
    )


def status_history(
    session: Session, tenant_id: str, entity_kind: str, entity_id: str
) -> list[StatusChanged]:
    query = (
        select(StatusEventRow)
        .where(
            StatusEventRow.tenant_id == tenant_id,
            StatusEventRow.entity_kind == entity_kind,
            StatusEventRow.entity_id == entity_id,
        )
        .order_by(StatusEventRow.id)
    )
    return [
        StatusChanged(
            entity_kind=row.entity_kind,
            entity_id=row.entity_id,
            tenant_id=row.tenant_id,
            old_status=row.old_status,
            new_status=row.new_status,
            at=row.created_at,
            reason=row.reason,
            data=row.data,
        )
        for row in session.scalars(query)
    ]
