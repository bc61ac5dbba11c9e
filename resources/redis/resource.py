"""Redis as a Dagster resource: live session events and agent heartbeats, both optional.

Without a URL (the embedded default) the publisher is the null one, and there is no reader and no
heartbeat store: followers read the database, routing goes by `last_heartbeat_at`. With one, the
clients are built on first use and kept for the resource instance (one run or sensor tick: Dagster
builds a copy per execution and tears it down after).
"""

from __future__ import annotations

import dagster as dg
from pydantic import Field, PrivateAttr

from resources import settings
from resources.redis.heartbeats import DEFAULT_TTL_SECONDS, HeartbeatStore
from resources.redis.live_events import EventPublisher, RedisEventReader, make_event_publisher


class RedisResource(dg.ConfigurableResource):
    """Redis in production; None runs without it (ARCHITECTURE.md §2: never the truth)."""

    url: str | None = Field(
        default=None, description="Redis URL (redis://host:port/db); unset: run without Redis."
    )
    heartbeat_ttl_seconds: float = Field(
        default=DEFAULT_TTL_SECONDS,
        gt=0,
        description="How long an agent counts as alive after its last heartbeat.",
    )

    _publisher: EventPublisher | None = PrivateAttr(default=None)
    _reader: RedisEventReader | None = PrivateAttr(default=None)
    _heartbeats: HeartbeatStore | None = PrivateAttr(default=None)

    def event_publisher(self) -> EventPublisher:
        """What `SessionService(publish=...)` takes (its `publish`); never raises for Redis."""
        if self._publisher is None:
            self._publisher = make_event_publisher(self.url)
        return self._publisher

    def event_reader(self) -> RedisEventReader | None:
        """The stream reader for live followers; None when Redis is not configured."""
        if self.url and self._reader is None:
            self._reader = RedisEventReader(self.url)
        return self._reader

    def heartbeat_store(self) -> HeartbeatStore | None:
        """The agents' heartbeats; None when Redis is not configured."""
        if self.url and self._heartbeats is None:
            self._heartbeats = HeartbeatStore(self.url, ttl_seconds=self.heartbeat_ttl_seconds)
        return self._heartbeats

    def close(self) -> None:
        """Close the clients built so far; the next call builds fresh ones."""
        for client in (self._publisher, self._reader, self._heartbeats):
            if client is not None:
                client.close()
        self._publisher = None
        self._reader = None
        self._heartbeats = None

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self.close()


def configured_redis_resource() -> RedisResource:
    """The resource as the code location binds it: ``REDIS_URL`` as an `EnvVar` when set (the URL
    may carry a password, so it stays out of the snapshot and the UI), else no Redis."""
    if settings.redis_url() is not None:
        return RedisResource(url=dg.EnvVar(settings.REDIS_URL_VAR))
    return RedisResource(url=None)
