"""Webhooks: a tenant's endpoints (LEAD or higher to manage and read them) and their delivery.

Endpoints: the URL must pass the SSRF guard (`domain.webhook_address`) at registration; the
signing secret is generated here, returned once and kept sealed (`resources.secret_box`): the
platform must sign with it, so a hash would not do.

Delivery: deliveries are written by the repositories in the transaction of the change they
tell of (the outbox); `deliver_due` drains a tenant's due ones (the Dagster sensor
`webhook_delivery_sensor` calls it every few seconds). Each is first taken (its next attempt
moved past the attempt's timeout, one conditional update) so two runners never send it at
once, and a runner that dies mid-attempt leaves it due again: delivered at least once,
receivers deduplicate on `X-Indorch-Delivery`. The URL is checked again at each attempt (its
name may point elsewhere now), and the attempt connects to the address that check resolved,
naming the URL's host in the `Host` header and in TLS (SNI and certificate), so a name
re-pointed between the check and the connection (DNS rebinding) cannot reach the platform's
network (a proxy the environment names gets the checked address too); redirects are not
followed. Why a sensor and not a background task of the API: the API may run as several
processes or none, while the sensor runs once per tick in the deployment that already runs the
sessions, and the outbox in the database makes either crash-safe.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx

from domain.caller import Caller
from domain.clock import utcnow
from domain.errors import ConcurrentModification, DomainError, InvalidInput
from domain.signed_payload import signature
from domain.tenant import Role
from domain.webhook import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    MAX_ENDPOINTS_PER_TENANT,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    DeliveryAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    generate_secret,
)
from domain.webhook_address import (
    Address,
    Resolver,
    UnsafeWebhookUrl,
    WebhookDestination,
    resolved_addresses,
    webhook_destination,
    webhook_url_problem,
)
from resources import settings
from resources.database import Database, tenant_scope, unit_of_work
from resources.secret_box import SecretBox, secret_box_from_environment

logger = logging.getLogger(__name__)
ROLE = Role.LEAD
TIMEOUT_SECONDS = 10.0
MAX_LISTED = 100


def _pinned(url: httpx.URL, address: Address) -> httpx.URL:
    """The URL with its host replaced by a checked address (nothing left to look up)."""
    return url.copy_with(host=str(address))


@dataclass(frozen=True)
class DeliveryReport:
    delivery_id: str
    endpoint_id: str
    status: str
    status_code: int | None


class Webhooks:
    def __init__(
        self,
        database: Database,
        box: SecretBox | None = None,
        clock: Callable[[], datetime] = utcnow,
        allow_private: bool | None = None,  # None: INDORCH_ALLOW_PRIVATE_WEBHOOKS
        timeout_seconds: float = TIMEOUT_SECONDS,
        resolve: Resolver = resolved_addresses,  # the system's; a test's own names
    ) -> None:
        self._database = database
        self._resolve = resolve
        self._box = box
        self._clock = clock
        self._allow_private = (
            settings.allow_private_webhooks() if allow_private is None else allow_private
        )
        self._timeout = timeout_seconds

    # -- endpoints ------------------------------------------------------------------------------

    def create(
        self,
        caller: Caller,
        tenant_id: str,
        url: str,
        events: list[str] | None = None,
        description: str = "",
    ) -> tuple[WebhookEndpoint, str]:
        """A new endpoint and its signing secret (the only time the secret is seen)."""
        self._allow(caller, tenant_id, "registering a webhook")
        fields = {"tenant_id": tenant_id, "url": url.strip(), "description": description}
        endpoint = WebhookEndpoint(**fields, **({"events": events} if events else {}))
        problem = webhook_url_problem(endpoint.url, self._allow_private, self._resolve)
        if problem:
            raise InvalidInput("url", problem)
        secret = generate_secret()
        sealed = self._secret_box().seal(secret)
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            uow.tenants.get_for_update(tenant_id)
            if len(uow.webhooks.list()) >= MAX_ENDPOINTS_PER_TENANT:
                raise InvalidInput("url", f"at most {MAX_ENDPOINTS_PER_TENANT} webhooks a tenant")
            uow.webhooks.add(endpoint, sealed)
        return endpoint, secret

    def list(self, caller: Caller, tenant_id: str) -> list[WebhookEndpoint]:
        self._allow(caller, tenant_id, "reading webhooks")
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            return uow.webhooks.list()

    def delete(self, caller: Caller, tenant_id: str, endpoint_id: str) -> None:
        """The endpoint goes, with its deliveries (pending ones are not sent)."""
        self._allow(caller, tenant_id, "deleting a webhook")
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            uow.webhooks.remove(endpoint_id)

    def deliveries(
        self, caller: Caller, tenant_id: str, endpoint_id: str, limit: int = MAX_LISTED
    ) -> list[WebhookDelivery]:
        """The endpoint's deliveries, newest first (`NotFound` for another tenant's)."""
        self._allow(caller, tenant_id, "reading webhook deliveries")
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            return uow.webhooks.deliveries(endpoint_id, min(max(limit, 1), MAX_LISTED))

    # -- delivery ---------------------------------------------------------------------------------

    def deliver_due(self, caller: Caller, tenant_id: str, limit: int = 50) -> list[DeliveryReport]:
        """Attempt the tenant's due deliveries once each (the sensor's work)."""
        caller.require_operator("delivering webhooks")
        now = self._clock()
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            due = uow.webhooks.due(now, limit)
        reports: list[DeliveryReport] = []
        with httpx.Client(timeout=self._timeout, follow_redirects=False) as client:
            for delivery in due:
                report = self._attempt(client, tenant_id, delivery)
                if report is not None:
                    reports.append(report)
        return reports

    def _attempt(
        self, client: httpx.Client, tenant_id: str, delivery: WebhookDelivery
    ) -> DeliveryReport | None:
        taken_until = self._clock() + timedelta(seconds=self._timeout * 3)
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            if not uow.webhooks.postpone(delivery, taken_until):
                return None  # another runner took it
            endpoint = uow.webhooks.get(delivery.endpoint_id)
            sealed = uow.webhooks.sealed_secret(delivery.endpoint_id)
        try:
            secret = self._secret_box().open(sealed)
        except DomainError as error:  # e.g. the secret key rotated away: this one waits, not all
            attempt = DeliveryAttempt(at=self._clock(), error=f"not sent: {error}")
        else:
            attempt = self._send(client, endpoint, secret, delivery)
        delivery.record(attempt)
        try:
            with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
                uow.webhooks.save(delivery, taken_until)
        except ConcurrentModification:
            return None
        logger.info(
            "tenant %s webhook %s delivery %s (%s): attempt %d %s",
            tenant_id,
            endpoint.id,
            delivery.id,
            delivery.event_type,
            delivery.attempts,
            attempt.status_code or attempt.error,
        )
        return DeliveryReport(delivery.id, endpoint.id, delivery.status.value, attempt.status_code)

    def _send(
        self,
        client: httpx.Client,
        endpoint: WebhookEndpoint,
        secret: str,
        delivery: WebhookDelivery,
    ) -> DeliveryAttempt:
        at = self._clock()
        try:
            destination = webhook_destination(endpoint.url, self._allow_private, self._resolve)
            url = httpx.URL(endpoint.url)
        except UnsafeWebhookUrl as unsafe:
            return DeliveryAttempt(at=at, error=f"not sent: {unsafe.problem}")
        except httpx.InvalidURL:
            return DeliveryAttempt(at=at, error="not sent: the webhook URL is malformed")
        body = json.dumps({"id": delivery.id, **delivery.payload}, sort_keys=True).encode()
        sent_at = int(time.time())
        headers = {
            "Host": url.netloc.decode("ascii"),
            "Content-Type": "application/json",
            "User-Agent": "indorch-webhooks/1",
            EVENT_HEADER: delivery.event_type,
            DELIVERY_HEADER: delivery.id,
            TIMESTAMP_HEADER: str(sent_at),
            SIGNATURE_HEADER: signature(secret, sent_at, body),
        }
        started = time.monotonic()
        try:
            answer = self._post(client, url, destination, body, headers)
        except httpx.HTTPError as error:
            return DeliveryAttempt(
                at=at,
                error=f"no answer ({type(error).__name__})",
                duration_ms=int((time.monotonic() - started) * 1000),
            )
        return DeliveryAttempt(
            at=at,
            status_code=answer.status_code,
            error=None if answer.is_success else f"answered {answer.status_code}",
            duration_ms=int((time.monotonic() - started) * 1000),
        )

    @staticmethod
    def _post(
        client: httpx.Client,
        url: httpx.URL,
        destination: WebhookDestination,
        body: bytes,
        headers: dict[str, str],
    ) -> httpx.Response:
        """Posted to the first checked address that takes the connection: one that refuses it
        (or does not answer the connect) received nothing, so the next is tried; any later
        error ends the attempt (the receiver may have the body: the retry is the delivery's)."""

        def send(address: Address) -> httpx.Response:
            return client.post(
                _pinned(url, address),
                content=body,
                headers=headers,
                extensions={"sni_hostname": url.raw_host.decode("ascii")},
            )

        for address in destination.addresses[:-1]:
            with contextlib.suppress(httpx.ConnectError, httpx.ConnectTimeout):
                return send(address)
        return send(destination.addresses[-1])

    def _secret_box(self) -> SecretBox:
        if self._box is None:
            self._box = secret_box_from_environment()
        return self._box

    @staticmethod
    def _allow(caller: Caller, tenant_id: str, action: str) -> None:
        caller.require_tenant(tenant_id)
        caller.require(ROLE, action)
