"""EAP routing (a silent external agent leaves routing) and the webhook rules (which events an
endpoint wants, the retry pauses, an attempt's outcome)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.agent import Agent, AgentKind
from domain.errors import InvalidInput, NoAgentAvailable
from domain.routing import AgentState, choose_agent, refusal_reason
from domain.webhook import (
    MAX_ATTEMPTS,
    DeliveryAttempt,
    DeliveryStatus,
    WebhookDelivery,
    WebhookEndpoint,
    retry_delay,
    wants,
)

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)


def _external(beat_seconds_ago: float | None) -> Agent:
    beat = None if beat_seconds_ago is None else NOW - timedelta(seconds=beat_seconds_ago)
    return Agent(
        tenant_id="acme",
        name="ext",
        server_url="https://agent.example/tasks",
        kind=AgentKind.EXTERNAL,
        last_heartbeat_at=beat,
    )


def test_an_external_agent_is_routed_to_only_while_its_heartbeat_is_fresh() -> None:
    ttl = timedelta(seconds=60)
    fresh = AgentState(_external(10), 0, now=NOW, heartbeat_ttl=ttl)
    assert refusal_reason(fresh, set()) is None
    assert choose_agent([fresh]).agent_id == fresh.agent.id
    for stale in (_external(61), _external(None)):
        state = AgentState(stale, 0, now=NOW, heartbeat_ttl=ttl)
        assert (refusal_reason(state, set()) or "").startswith("silent (no heartbeat for")
        with pytest.raises(NoAgentAvailable):
            choose_agent([state])


def test_an_opencode_agents_heartbeat_is_not_routings_business() -> None:
    agent = Agent(tenant_id="acme", name="oc", server_url="http://127.0.0.1:4096")
    assert refusal_reason(AgentState(agent, 0, now=NOW), set()) is None


def test_an_endpoint_wants_its_patterns_and_refuses_unknown_ones() -> None:
    assert wants(["session.*"], "session.completed")
    assert wants(["session.completed"], "session.completed")
    assert not wants(["session.completed"], "session.failed")
    assert not wants(["session.*"], "fine_tuning.running")
    assert wants(["*"], "fine_tuning.running")
    with pytest.raises(InvalidInput):
        WebhookEndpoint(tenant_id="acme", url="https://x.example/h", events=["sessions.*"])
    with pytest.raises(InvalidInput):
        WebhookEndpoint(tenant_id="acme", url="https://x.example/h", events=[])


def test_retries_double_up_to_an_hour_and_end_failed_after_the_last_attempt() -> None:
    assert [retry_delay(n).total_seconds() for n in (1, 2, 3, 4)] == [10, 20, 40, 80]
    assert retry_delay(20) == timedelta(hours=1)
    delivery = WebhookDelivery(
        tenant_id="acme", endpoint_id="WH-1", event_type="session.failed", payload={}
    )
    for attempt in range(1, MAX_ATTEMPTS):
        delivery.record(DeliveryAttempt(at=NOW, status_code=503, error="answered 503"))
        assert delivery.status is DeliveryStatus.PENDING
        assert delivery.next_attempt_at == NOW + retry_delay(attempt)
    delivery.record(DeliveryAttempt(at=NOW, error="no answer (ConnectTimeout)"))
    assert (delivery.status, delivery.next_attempt_at) == (DeliveryStatus.FAILED, None)
    other = WebhookDelivery(tenant_id="acme", endpoint_id="WH-1", event_type="x", payload={})
    other.record(DeliveryAttempt(at=NOW, status_code=204))
    assert (other.status, other.delivered_at, other.attempts) == (DeliveryStatus.DELIVERED, NOW, 1)
