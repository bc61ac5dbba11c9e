"""`RedisResource` hands out the live-event publisher and reader and the heartbeat store, built
once per resource instance; without a URL it runs without Redis (the embedded default)."""

from __future__ import annotations

import dagster as dg
import pytest

from resources.redis.heartbeats import HeartbeatStore
from resources.redis.live_events import (
    NullEventPublisher,
    RedisEventPublisher,
    RedisEventReader,
    make_event_publisher,
)
from resources.redis.resource import RedisResource, configured_redis_resource

DEAD_REDIS = "redis://127.0.0.1:1/0"  # never contacted: the clients connect on first use


def test_without_a_url_there_is_no_redis_to_use() -> None:
    resource = RedisResource()
    assert isinstance(resource.event_publisher(), NullEventPublisher)
    assert resource.event_reader() is None
    assert resource.heartbeat_store() is None


def test_with_a_url_the_clients_are_built_once_per_instance() -> None:
    resource = RedisResource(url=DEAD_REDIS, heartbeat_ttl_seconds=5)
    publisher = resource.event_publisher()
    assert isinstance(publisher, RedisEventPublisher)
    assert resource.event_publisher() is publisher
    assert isinstance(resource.event_reader(), RedisEventReader)
    assert resource.event_reader() is resource.event_reader()
    store = resource.heartbeat_store()
    assert isinstance(store, HeartbeatStore)
    assert store.ttl_seconds == 5
    assert resource.heartbeat_store() is store
    resource.close()


def test_make_event_publisher_picks_by_url() -> None:
    assert isinstance(make_event_publisher(None), NullEventPublisher)
    publisher = make_event_publisher(DEAD_REDIS)
    assert isinstance(publisher, RedisEventPublisher)
    publisher.close()


def test_the_null_publisher_accepts_everything_and_is_never_degraded() -> None:
    publisher = NullEventPublisher()
    assert publisher.degraded is False
    assert publisher.dropped == 0


def test_redis_url_from_the_environment_is_bound_as_env_var(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Resolved where it runs, never stored in the snapshot (the URL may hold a password).
    monkeypatch.setenv("REDIS_URL", "redis://:secret@cache:6379/0")
    assert configured_redis_resource() == RedisResource(url=dg.EnvVar("REDIS_URL"))
    with configured_redis_resource().process_config_and_initialize_cm() as resolved:
        assert resolved.url == "redis://:secret@cache:6379/0"


def test_without_redis_url_the_resource_runs_without_redis(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert configured_redis_resource() == RedisResource(url=None)
