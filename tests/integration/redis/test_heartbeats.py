"""Agent heartbeats in Redis: a beat keeps an agent alive for the TTL, per tenant; with Redis
down the store answers "nobody known alive here" and says it is degraded (the database's
`last_heartbeat_at` remains the truth)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from resources.redis.heartbeats import HeartbeatStore

pytestmark = pytest.mark.redis

TTL_SECONDS = 0.5


@pytest.fixture
def store(redis_url: str) -> Iterator[HeartbeatStore]:
    store = HeartbeatStore(redis_url, ttl_seconds=TTL_SECONDS)
    yield store
    store.close()


def test_a_beat_keeps_an_agent_alive_until_its_ttl_passes(
    store: HeartbeatStore, redis_client: redis.Redis, tenant: str
) -> None:
    assert store.beat(tenant, "AGENT-1", load=2, healthy=True)
    alive = store.alive(tenant)
    assert set(alive) == {"AGENT-1"}
    info = alive["AGENT-1"]
    assert (info.agent_id, info.load, info.healthy) == ("AGENT-1", 2, True)
    assert info.at.tzinfo is not None

    time.sleep(TTL_SECONDS + 0.2)
    assert store.alive(tenant) == {}
    assert redis_client.smembers(f"indorch:{tenant}:heartbeats") == set()


def test_a_new_beat_extends_the_life_and_replaces_the_load(
    store: HeartbeatStore, tenant: str
) -> None:
    store.beat(tenant, "AGENT-1", load=1, healthy=True)
    time.sleep(TTL_SECONDS * 0.6)
    store.beat(tenant, "AGENT-1", load=4, healthy=False)
    time.sleep(TTL_SECONDS * 0.6)  # past the first beat's TTL, within the second's
    info = store.alive(tenant)["AGENT-1"]
    assert (info.load, info.healthy) == (4, False)


def test_heartbeats_are_per_tenant(store: HeartbeatStore, tenant: str, other_tenant: str) -> None:
    store.beat(tenant, "AGENT-1", load=0, healthy=True)
    store.beat(other_tenant, "AGENT-2", load=0, healthy=True)
    assert set(store.alive(tenant)) == {"AGENT-1"}
    assert set(store.alive(other_tenant)) == {"AGENT-2"}


def test_with_redis_down_nobody_is_alive_and_the_store_is_degraded() -> None:
    store = HeartbeatStore("redis://127.0.0.1:1/0", ttl_seconds=TTL_SECONDS)
    assert store.beat("acme", "AGENT-1", load=0, healthy=True) is False
    assert store.alive("acme") == {}
    assert store.degraded
    store.close()
