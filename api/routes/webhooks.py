"""Webhooks: a tenant's URLs for session and fine-tuning events, and what was delivered there.

LEAD or higher for every route (a URL may carry the receiver's own credentials). The signing
secret is answered once, at creation. Another tenant's webhook answers 404.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from api.authentication import CallerDep
from api.services import Services, services
from domain.caller import Caller
from domain.webhook import WebhookDelivery, WebhookEndpoint

router = APIRouter(prefix="/webhooks", tags=["webhooks"])
Wiring = Annotated[Services, Depends(services)]


class WebhookRegistration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2000)
    events: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=30,
        description="`*`, `session.*`, `fine_tuning.*` or one state (`session.completed`); "
        "default: session.* and fine_tuning.*",
    )
    description: str = Field(default="", max_length=200)


class WebhookView(BaseModel):
    id: str
    url: str
    events: list[str]
    description: str
    created_at: datetime

    @classmethod
    def of(cls, endpoint: WebhookEndpoint) -> WebhookView:
        return cls(**endpoint.model_dump(exclude={"tenant_id"}))


class WebhookCreated(BaseModel):
    webhook: WebhookView
    secret: str = Field(description="Signs every delivery; shown this once.")


class WebhookList(BaseModel):
    webhooks: list[WebhookView]


class DeliveryView(BaseModel):
    id: str
    event_type: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    history: list[dict[str, Any]]
    payload: dict[str, Any]

    @classmethod
    def of(cls, delivery: WebhookDelivery) -> DeliveryView:
        return cls(**delivery.model_dump(mode="json", exclude={"tenant_id", "endpoint_id"}))


class DeliveryList(BaseModel):
    deliveries: list[DeliveryView]


def _tenant(caller: Caller) -> str:
    assert caller.tenant_id is not None  # an API caller is always a tenant's
    return caller.tenant_id


@router.post("", status_code=201)
def create_webhook(body: WebhookRegistration, caller: CallerDep, wiring: Wiring) -> WebhookCreated:
    endpoint, secret = wiring.factory.webhooks().create(
        caller, _tenant(caller), body.url, body.events, body.description
    )
    return WebhookCreated(webhook=WebhookView.of(endpoint), secret=secret)


@router.get("")
def list_webhooks(caller: CallerDep, wiring: Wiring) -> WebhookList:
    endpoints = wiring.factory.webhooks().list(caller, _tenant(caller))
    return WebhookList(webhooks=[WebhookView.of(endpoint) for endpoint in endpoints])


@router.delete("/{webhook_id}", status_code=204)
def delete_webhook(webhook_id: str, caller: CallerDep, wiring: Wiring) -> Response:
    wiring.factory.webhooks().delete(caller, _tenant(caller), webhook_id)
    return Response(status_code=204)


@router.get("/{webhook_id}/deliveries")
def list_deliveries(
    webhook_id: str,
    caller: CallerDep,
    wiring: Wiring,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> DeliveryList:
    """The webhook's deliveries, newest first: status, attempts, each attempt's answer."""
    deliveries = wiring.factory.webhooks().deliveries(caller, _tenant(caller), webhook_id, limit)
    return DeliveryList(deliveries=[DeliveryView.of(delivery) for delivery in deliveries])
