"""Webhooks: a tenant's URLs told of its sessions' and fine-tuning jobs' state changes.

An endpoint names the events it wants (`session.completed`, `session.*`, `fine_tuning.*`, `*`);
every status change of a session (`session.<new status>`) or fine-tuning job
(`fine_tuning.<new status>`) becomes one delivery per endpoint that wants it, written in the
transaction of the change (the outbox: nothing lost on a crash). A delivery is a signed POST
(`domain.signed_payload`, the endpoint's own secret, shown once at creation); anything but a
2xx answer is tried again after a doubling pause (`retry_delay`) up to `MAX_ATTEMPTS`, then
FAILED. Every attempt is recorded (`history`), newest last, the last `HISTORY_KEPT` kept.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import Field, field_validator

from domain.clock import utcnow
from domain.domain_model import DomainModel
from domain.ids import ulid

ENDPOINT_PREFIX = "WH-"
DELIVERY_PREFIX = "WHD-"
SECRET_PREFIX = "whsec_"
MAX_ATTEMPTS = 6
FIRST_RETRY = timedelta(seconds=10)
LONGEST_RETRY = timedelta(hours=1)
HISTORY_KEPT = 20
MAX_ENDPOINTS_PER_TENANT = 20
ENTITY_EVENTS = {"session": "session", "fine_tuning_job": "fine_tuning"}
EVENT_PATTERN = re.compile(r"\*|(session|fine_tuning)\.(\*|[a-z_]{1,32})")
DEFAULT_EVENTS = ["session.*", "fine_tuning.*"]
# The headers of a delivery.
EVENT_HEADER = "X-Indorch-Event"
DELIVERY_HEADER = "X-Indorch-Delivery"
TIMESTAMP_HEADER = "X-Indorch-Timestamp"
SIGNATURE_HEADER = "X-Indorch-Signature"


def new_endpoint_id() -> str:
    return ENDPOINT_PREFIX + ulid()


def new_delivery_id() -> str:
    return DELIVERY_PREFIX + ulid()


def generate_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def event_type_for(entity_kind: str, new_status: str) -> str | None:
    """`session.completed`, `fine_tuning.running`, ...; None for entities not told of."""
    prefix = ENTITY_EVENTS.get(entity_kind)
    return f"{prefix}.{new_status.lower()}" if prefix else None


def wants(patterns: list[str], event_type: str) -> bool:
    family = event_type.split(".", 1)[0]
    return any(p in ("*", event_type, f"{family}.*") for p in patterns)


def retry_delay(attempts: int) -> timedelta:
    """The pause after the `attempts`-th failed attempt: 10 s, 20 s, 40 s, ... at most 1 h."""
    return min(FIRST_RETRY * 2 ** max(attempts - 1, 0), LONGEST_RETRY)


class DeliveryStatus(StrEnum):
    PENDING = "PENDING"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"


class WebhookEndpoint(DomainModel):
    id: str = Field(default_factory=new_endpoint_id)
    tenant_id: str
    url: str = Field(min_length=1, max_length=2000)
    events: list[str] = Field(default_factory=lambda: list(DEFAULT_EVENTS), min_length=1)
    description: str = Field(default="", max_length=200)
    created_at: datetime = Field(default_factory=utcnow)

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[str]) -> list[str]:
        cleaned = sorted({pattern.strip() for pattern in value})
        for pattern in cleaned:
            if not EVENT_PATTERN.fullmatch(pattern):
                raise ValueError(
                    f"{pattern!r} is not an event: use *, session.*, fine_tuning.*, or one "
                    "state such as session.completed"
                )
        return cleaned


class DeliveryAttempt(DomainModel):
    at: datetime
    status_code: int | None = None
    error: str | None = None
    duration_ms: int = 0


class WebhookDelivery(DomainModel):
    id: str = Field(default_factory=new_delivery_id)
    tenant_id: str
    endpoint_id: str
    event_type: str
    payload: dict[str, Any]
    status: DeliveryStatus = DeliveryStatus.PENDING
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_status_code: int | None = None
    last_error: str | None = None
    history: list[DeliveryAttempt] = Field(default_factory=list)
    created_at: datetime = Field(default_factory=utcnow)
    delivered_at: datetime | None = None

    def record(self, attempt: DeliveryAttempt) -> None:
        """One attempt's outcome: DELIVERED on a 2xx, else the next try or FAILED."""
        self.attempts += 1
        self.history = [*self.history, attempt][-HISTORY_KEPT:]
        self.last_status_code = attempt.status_code
        self.last_error = attempt.error
        if attempt.status_code is not None and 200 <= attempt.status_code < 300:
            self.status = DeliveryStatus.DELIVERED
            self.delivered_at = attempt.at
            self.next_attempt_at = None
        elif self.attempts >= MAX_ATTEMPTS:
            self.status = DeliveryStatus.FAILED
            self.next_attempt_at = None
        else:
            self.next_attempt_at = attempt.at + retry_delay(self.attempts)
