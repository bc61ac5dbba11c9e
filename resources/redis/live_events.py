"""Live session events over Redis Streams: published once the database has them, read by followers.

The database holds every event (`SessionRepository.events`); the streams only make them fast to
follow (the API's SSE endpoint, ``session events --follow``). Each event is appended to two
streams of its tenant (see `resources.redis.keys`): the tenant's, capped near
`TENANT_STREAM_MAXLEN`, and its session's, capped near `SESSION_STREAM_MAXLEN` and expiring
`SESSION_STREAM_TTL` after its last event. An entry carries the event as JSON in the field
``event``, plus ``session_id``, ``seq`` and ``event_type`` in plain text for ``redis-cli`` users.

`publish` never raises when Redis is down: the event is dropped (followers find it in the
database), counted in `dropped`, and the publisher reports `degraded` until Redis answers again
(see `resources.redis.link`). Readers raise `RedisUnavailable` instead, so that a follower can turn
to the database (`resources.redis.live_event_feed.LiveEventFeed` does).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import ValidationError

from domain.events import SessionEvent
from resources.redis.keys import session_events_key, tenant_events_key
from resources.redis.link import ProbeBackoff, RedisLink, RedisUnavailable

if TYPE_CHECKING:
    import redis

logger = logging.getLogger(__name__)

SESSION_STREAM_MAXLEN = 1000
TENANT_STREAM_MAXLEN = 100_000
SESSION_STREAM_TTL = timedelta(days=1)
EVENT_FIELD = "event"
DEFAULT_MAX_BLOCK_MS = 5000
DEFAULT_COUNT = 100


class EventPublisher(Protocol):
    """Where `SessionService(publish=...)` sends each recorded event."""

    def publish(self, event: SessionEvent) -> None: ...

    @property
    def degraded(self) -> bool: ...

    @property
    def dropped(self) -> int: ...

    def close(self) -> None: ...


class NullEventPublisher:
    """The embedded default (no Redis): followers read the database, so there is nothing to send."""

    degraded = False
    dropped = 0

    def publish(self, event: SessionEvent) -> None:
        return None

    def close(self) -> None:
        return None


def encode(event: SessionEvent) -> dict[str, str]:
    return {
        EVENT_FIELD: event.model_dump_json(),
        "session_id": event.session_id,
        "seq": str(event.seq),
        "event_type": event.event_type,
    }


def decode(fields: Mapping[str, Any]) -> SessionEvent | None:
    """The event of a stream entry, or None (logged) when the entry is not one of ours."""
    try:
        return SessionEvent.model_validate_json(fields[EVENT_FIELD])
    except (KeyError, ValidationError) as error:
        logger.warning("skipping a stream entry that is not a session event: %s", error)
        return None


class RedisEventPublisher:
    """Appends each event to its tenant's and its session's streams, in one MULTI/EXEC."""

    def __init__(
        self,
        url: str,
        *,
        session_maxlen: int = SESSION_STREAM_MAXLEN,
        tenant_maxlen: int = TENANT_STREAM_MAXLEN,
        session_ttl: timedelta = SESSION_STREAM_TTL,
        probe_backoff: ProbeBackoff | None = None,
    ) -> None:
        self._link = RedisLink(url, "live events", probe_backoff=probe_backoff)
        self._session_maxlen = session_maxlen
        self._tenant_maxlen = tenant_maxlen
        self._session_ttl = session_ttl
        self._lock = threading.Lock()
        self._dropped = 0

    @property
    def degraded(self) -> bool:
        return self._link.degraded

    @property
    def dropped(self) -> int:
        """Events that did not reach Redis since this publisher was made."""
        return self._dropped

    def publish(self, event: SessionEvent) -> None:
        """Never raises for Redis trouble. An event without a valid tenant is a bug: it raises
        `TenantNotSet` or `InvalidInput` rather than land on a key another tenant could share."""
        self.deliver_many([event])

    def deliver_many(self, events: Sequence[SessionEvent]) -> bool:
        """Append `events`, in order, in one MULTI/EXEC (one round trip, all or none): for a
        caller that keeps what did not go through and sends it again (a region replicator).
        False when Redis did not take them (each counted as dropped)."""
        appends = [
            (
                tenant_events_key(event.tenant_id),
                session_events_key(event.tenant_id, event.session_id),
                encode(event),
            )
            for event in events
        ]

        def append(client: redis.Redis) -> None:
            pipeline = client.pipeline(transaction=True)
            for tenant_key, session_key, fields in appends:
                pipeline.xadd(tenant_key, fields, maxlen=self._tenant_maxlen, approximate=True)
                pipeline.xadd(session_key, fields, maxlen=self._session_maxlen, approximate=True)
                pipeline.expire(session_key, self._session_ttl)
            pipeline.execute()

        try:
            self._link.call(append)
        except RedisUnavailable:
            with self._lock:
                self._dropped += len(appends)
            return False
        return True

    def close(self) -> None:
        self._link.close()


def make_event_publisher(redis_url: str | None) -> EventPublisher:
    """A Redis publisher when a URL is configured, else the null one (the embedded default)."""
    return RedisEventPublisher(redis_url) if redis_url else NullEventPublisher()


@dataclass(frozen=True)
class StreamEntry:
    """One event as read from a stream, with the entry id to continue after."""

    entry_id: str
    event: SessionEvent


class RedisEventReader:
    """Reads the streams for live followers; every method raises `RedisUnavailable` when Redis
    does not answer. `after_id` is a stream entry id ("0-0": from the oldest entry kept, "$":
    only entries added from now on); `block_ms` waits up to that long for a first entry (at most
    `max_block_ms`; None or 0: do not wait)."""

    def __init__(
        self,
        url: str,
        *,
        max_block_ms: int = DEFAULT_MAX_BLOCK_MS,
        probe_backoff: ProbeBackoff | None = None,
    ) -> None:
        self._max_block_ms = max_block_ms
        # A blocking read is a command that may take max_block_ms: the socket must outwait it.
        self._link = RedisLink(
            url,
            "live event readers",
            command_timeout=max_block_ms / 1000 + 1.0,
            probe_backoff=probe_backoff,
        )

    @property
    def degraded(self) -> bool:
        return self._link.degraded

    def read_session_events(
        self,
        tenant_id: str,
        session_id: str,
        after_id: str = "0-0",
        block_ms: int | None = None,
        count: int = DEFAULT_COUNT,
    ) -> list[StreamEntry]:
        return self._read(session_events_key(tenant_id, session_id), after_id, block_ms, count)

    def read_tenant_events(
        self,
        tenant_id: str,
        after_id: str = "0-0",
        block_ms: int | None = None,
        count: int = DEFAULT_COUNT,
    ) -> list[StreamEntry]:
        return self._read(tenant_events_key(tenant_id), after_id, block_ms, count)

    def last_session_entry_id(self, tenant_id: str, session_id: str) -> str:
        """The id of the session stream's newest entry, "0-0" when it has none."""
        return self._newest_entry_id(session_events_key(tenant_id, session_id))

    def last_tenant_entry_id(self, tenant_id: str) -> str:
        """The id of the tenant stream's newest entry, "0-0" when it has none."""
        return self._newest_entry_id(tenant_events_key(tenant_id))

    def _newest_entry_id(self, key: str) -> str:
        newest = self._link.call(lambda client: client.xrevrange(key, count=1))
        return newest[0][0] if newest else "0-0"

    def close(self) -> None:
        self._link.close()

    def _read(self, key: str, after_id: str, block_ms: int | None, count: int) -> list[StreamEntry]:
        # XREAD BLOCK 0 would wait forever: 0 and None both mean "answer now".
        block = min(block_ms, self._max_block_ms) if block_ms else None
        answer = self._link.call(
            lambda client: client.xread({key: after_id}, count=count, block=block)
        )
        entries: list[StreamEntry] = []
        for _key, rows in answer or []:
            for entry_id, fields in rows:
                event = decode(fields)
                if event is not None:
                    entries.append(StreamEntry(entry_id=entry_id, event=event))
        return entries
