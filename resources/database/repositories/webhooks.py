"""A tenant's webhook endpoints and the deliveries outbox (`domain.webhook`).

`enqueue_deliveries` is called by the repositories that record status changes (sessions,
fine-tuning jobs), in their transaction: the deliveries commit with the change or not at all.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String, bindparam, delete, insert, select, update
from sqlalchemy.orm import Session

from domain.errors import ConcurrentModification, NotFound
from domain.events import StatusChanged
from domain.webhook import (
    DeliveryAttempt,
    DeliveryStatus,
    WebhookDelivery,
    WebhookEndpoint,
    event_type_for,
    new_delivery_id,
    wants,
)
from resources.database.repositories.base import TenantScopedRepository
from resources.database.schema import WebhookDeliveryRow, WebhookEndpointRow

_ENDED = (DeliveryStatus.DELIVERED.value, DeliveryStatus.FAILED.value)


def _endpoint(row: WebhookEndpointRow) -> WebhookEndpoint:
    return WebhookEndpoint(
        id=row.id,
        tenant_id=row.tenant_id,
        url=row.url,
        events=row.events,
        description=row.description,
        created_at=row.created_at,
    )


def _delivery(row: WebhookDeliveryRow) -> WebhookDelivery:
    return WebhookDelivery(
        id=row.id,
        tenant_id=row.tenant_id,
        endpoint_id=row.endpoint_id,
        event_type=row.event_type,
        payload=row.payload,
        status=DeliveryStatus(row.status),
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        history=[DeliveryAttempt.model_validate(item) for item in row.history],
        created_at=row.created_at,
        delivered_at=row.delivered_at,
    )


_ENDPOINTS = WebhookEndpointRow.__table__
# Built once: every state change of every session asks which of its tenant's endpoints want it.
_TENANT_ENDPOINTS = select(_ENDPOINTS.c.id, _ENDPOINTS.c.events).where(
    _ENDPOINTS.c.tenant_id == bindparam("tenant", type_=String)
)


def enqueue_deliveries(
    session: Session, tenant_id: str, event: StatusChanged, extra: dict[str, Any] | None = None
) -> int:
    """One PENDING delivery per endpoint of the tenant that wants this change; how many."""
    event_type = event_type_for(event.entity_kind, event.new_status)
    if event_type is None:
        return 0
    endpoints = session.connection().execute(_TENANT_ENDPOINTS, {"tenant": tenant_id}).all()
    chosen = [endpoint_id for endpoint_id, events in endpoints if wants(events, event_type)]
    if not chosen:
        return 0
    payload = {
        "type": event_type,
        "tenant_id": tenant_id,
        "occurred_at": event.at.isoformat(),
        "data": {
            f"{event_type.split('.', 1)[0]}_id": event.entity_id,
            "old_status": event.old_status,
            "new_status": event.new_status,
            "reason": event.reason,
            **(extra or {}),
        },
    }
    session.execute(
        insert(WebhookDeliveryRow),
        [
            {
                "id": new_delivery_id(),
                "tenant_id": tenant_id,
                "endpoint_id": endpoint_id,
                "event_type": event_type,
                "payload": payload,
                "status": DeliveryStatus.PENDING.value,
                "attempts": 0,
                "next_attempt_at": event.at,
                "history": [],
                "created_at": event.at,
            }
            for endpoint_id in chosen
        ],
    )
    return len(chosen)


class WebhookRepository(TenantScopedRepository):
    kind = "webhook"

    def add(self, endpoint: WebhookEndpoint, secret_sealed: str) -> WebhookEndpoint:
        self._session.add(
            WebhookEndpointRow(
                id=endpoint.id,
                tenant_id=self._owned(endpoint.tenant_id),
                url=endpoint.url,
                events=endpoint.events,
                description=endpoint.description,
                secret_sealed=secret_sealed,
                created_at=endpoint.created_at,
            )
        )
        self._session.flush()
        return endpoint

    def list(self) -> list[WebhookEndpoint]:
        query = (
            select(WebhookEndpointRow)
            .where(WebhookEndpointRow.tenant_id == self.tenant_id)
            .order_by(WebhookEndpointRow.id)
        )
        return [_endpoint(row) for row in self._session.scalars(query)]

    def get(self, endpoint_id: str) -> WebhookEndpoint:
        return _endpoint(self._row(endpoint_id))

    def sealed_secret(self, endpoint_id: str) -> str:
        return self._row(endpoint_id).secret_sealed

    def remove(self, endpoint_id: str) -> None:
        """Delete the endpoint and its deliveries (the rows' foreign key cascades)."""
        self._row(endpoint_id)
        self._session.execute(
            delete(WebhookDeliveryRow).where(
                WebhookDeliveryRow.tenant_id == self.tenant_id,
                WebhookDeliveryRow.endpoint_id == endpoint_id,
            )
        )
        self._session.execute(
            delete(WebhookEndpointRow).where(
                WebhookEndpointRow.tenant_id == self.tenant_id,
                WebhookEndpointRow.id == endpoint_id,
            )
        )

    def deliveries(self, endpoint_id: str, limit: int) -> list[WebhookDelivery]:
        """The endpoint's deliveries, newest first."""
        self._row(endpoint_id)
        query = (
            select(WebhookDeliveryRow)
            .where(
                WebhookDeliveryRow.tenant_id == self.tenant_id,
                WebhookDeliveryRow.endpoint_id == endpoint_id,
            )
            .order_by(WebhookDeliveryRow.id.desc())
            .limit(limit)
        )
        return [_delivery(row) for row in self._session.scalars(query)]

    def due(self, now: datetime, limit: int) -> list[WebhookDelivery]:
        query = (
            select(WebhookDeliveryRow)
            .where(
                WebhookDeliveryRow.tenant_id == self.tenant_id,
                WebhookDeliveryRow.status == DeliveryStatus.PENDING.value,
                WebhookDeliveryRow.next_attempt_at <= now,
            )
            .order_by(WebhookDeliveryRow.next_attempt_at, WebhookDeliveryRow.id)
            .limit(limit)
        )
        return [_delivery(row) for row in self._session.scalars(query)]

    def postpone(self, delivery: WebhookDelivery, until: datetime) -> bool:
        """Take the delivery for an attempt: its next attempt moved to `until` (past the
        attempt's timeout), if no one took it since it was read. A runner that dies mid-attempt
        leaves it due again at `until`: delivered at least once, never lost."""
        result = self._session.execute(
            update(WebhookDeliveryRow)
            .where(
                WebhookDeliveryRow.tenant_id == self.tenant_id,
                WebhookDeliveryRow.id == delivery.id,
                WebhookDeliveryRow.status == DeliveryStatus.PENDING.value,
                WebhookDeliveryRow.next_attempt_at == delivery.next_attempt_at,
            )
            .values(next_attempt_at=until)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:
            delivery.next_attempt_at = until
        return result.rowcount == 1

    def save(self, delivery: WebhookDelivery, taken_until: datetime) -> None:
        """The attempt's outcome, if the delivery is still the one taken until `taken_until`."""
        result = self._session.execute(
            update(WebhookDeliveryRow)
            .where(
                WebhookDeliveryRow.tenant_id == self.tenant_id,
                WebhookDeliveryRow.id == delivery.id,
                WebhookDeliveryRow.next_attempt_at == taken_until,
            )
            .values(
                status=delivery.status.value,
                attempts=delivery.attempts,
                next_attempt_at=delivery.next_attempt_at,
                last_status_code=delivery.last_status_code,
                last_error=delivery.last_error,
                history=[item.model_dump(mode="json") for item in delivery.history],
                delivered_at=delivery.delivered_at,
            )
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            raise ConcurrentModification("webhook delivery", delivery.id, "PENDING", 0)

    def prune_ended(self, created_before: datetime, limit: int) -> int:
        """Delete at most `limit` deliveries that ended (DELIVERED, or FAILED out of attempts)
        and were created before `created_before`; how many. A PENDING one is never deleted:
        it is still to be sent. A delivery ends within hours of its creation (its retries
        pause at most an hour), so its creation dates it."""
        doomed = (
            select(WebhookDeliveryRow.id)
            .where(
                WebhookDeliveryRow.tenant_id == self.tenant_id,
                WebhookDeliveryRow.status.in_(_ENDED),
                WebhookDeliveryRow.created_at < created_before,
            )
            .limit(limit)
        )
        result = self._session.execute(
            delete(WebhookDeliveryRow)
            .where(
                WebhookDeliveryRow.tenant_id == self.tenant_id,
                WebhookDeliveryRow.id.in_(doomed),
            )
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount or 0)

    def _row(self, endpoint_id: str) -> WebhookEndpointRow:
        row = self._session.scalars(
            select(WebhookEndpointRow).where(
                WebhookEndpointRow.tenant_id == self.tenant_id,
                WebhookEndpointRow.id == endpoint_id,
            )
        ).first()
        if row is None:
            raise NotFound(self.kind, endpoint_id)
        return row
