"""One Redis client behind an outage breaker: Redis may fail, its callers never stall or crash.

Redis is an accelerator, never the truth (ARCHITECTURE.md §2), so every use of it must survive its
absence. A `RedisLink` gives that behaviour once, for the event publisher, the readers and the
heartbeat store:

- short timeouts (connect 0.5 s, commands 0.5 s unless the owner needs longer, e.g. a blocking
  read) and no retries inside redis-py, whose default backs off for seconds;
- a failed call raises `RedisUnavailable` and marks the link degraded; until the next probe,
  calls fail at once without touching the network, the wait doubling from `first` up to
  `longest` (a Redis that accepts connections but never answers costs one timeout per probe, not
  one per call); the first call after the wait probes, and success ends the outage;
- one warning when an outage starts, another at most every `warn_every` seconds while it lasts,
  and an info line when Redis answers again. URLs in messages never show the password.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from domain.errors import DomainError

if TYPE_CHECKING:  # redis-py is imported by the first client: a run without Redis never loads it
    import redis
    import redis.asyncio

logger = logging.getLogger(__name__)

T = TypeVar("T")
CONNECT_TIMEOUT_SECONDS = 0.5
COMMAND_TIMEOUT_SECONDS = 0.5
WARN_EVERY_SECONDS = 60.0
MAX_DETAIL_LENGTH = 300


class RedisUnavailable(DomainError):
    """Redis did not answer (or the link is waiting before probing it again)."""

    def __init__(self, url: str, purpose: str, detail: str) -> None:
        self.url = url
        self.purpose = purpose
        self.detail = detail
        super().__init__(f"Redis for {purpose} at {url} is unavailable: {detail}")


@dataclass(frozen=True)
class ProbeBackoff:
    """How long a degraded link waits before it tries Redis again, after n failed tries."""

    first: float = 0.5
    longest: float = 30.0

    def wait_after(self, failures: int) -> float:
        return min(self.longest, self.first * 2 ** max(failures - 1, 0))


def safe_url(url: str) -> str:
    """The URL with its password replaced by ``***`` (for logs and error messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}{port}"))


def describe(error: BaseException) -> str:
    """`Type: message`, one line, bounded: what a log line or a health report shows."""
    message = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {message}"[:MAX_DETAIL_LENGTH]


def _client_options(connect_timeout: float, command_timeout: float) -> dict[str, Any]:
    return {
        "socket_connect_timeout": connect_timeout,
        "socket_timeout": command_timeout,
        "socket_keepalive": True,
        "decode_responses": True,
    }


def connect(
    url: str,
    connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
    command_timeout: float = COMMAND_TIMEOUT_SECONDS,
) -> redis.Redis:
    """A client that gives up quickly and never retries by itself (callers decide)."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    options = _client_options(connect_timeout, command_timeout)
    return redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0), **options)


def connect_async(
    url: str,
    connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
    command_timeout: float = COMMAND_TIMEOUT_SECONDS,
) -> redis.asyncio.Redis:
    """`connect`'s client for asyncio: the same timeouts, no retries of its own."""
    import redis.asyncio
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    options = _client_options(connect_timeout, command_timeout)
    return redis.asyncio.Redis.from_url(url, retry=Retry(NoBackoff(), 0), **options)


class RedisLink:
    """A client of one Redis for one purpose (named in logs), with the breaker described above."""

    def __init__(
        self,
        url: str,
        purpose: str,
        *,
        command_timeout: float = COMMAND_TIMEOUT_SECONDS,
        probe_backoff: ProbeBackoff | None = None,
        warn_every: float = WARN_EVERY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.purpose = purpose
        self.safe_url = safe_url(url)
        self._password = urlsplit(url).password
        self._client = connect(url, command_timeout=command_timeout)
        self._url = url
        self._command_timeout = command_timeout
        self._async_clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, redis.asyncio.Redis
        ] = weakref.WeakKeyDictionary()
        self._backoff = probe_backoff or ProbeBackoff()
        self._warn_every = warn_every
        self._clock = clock
        self._lock = threading.Lock()
        self._outage_started: float | None = None
        self._failures = 0  # failed probes in this outage
        self._skipped = 0  # calls that did not reach Redis in this outage
        self._next_probe_at = 0.0
        self._last_warning_at = 0.0

    @property
    def degraded(self) -> bool:
        return self._outage_started is not None

    def call(self, action: Callable[[redis.Redis], T]) -> T:
        """`action(client)`'s result; `RedisUnavailable` when Redis fails or is being waited out.

        Only Redis errors count as an outage; any other exception is a bug and propagates.
        """
        self._before_call()
        from redis import RedisError  # loaded with the client (`connect`): a dictionary look-up

        try:
            result = action(self._client)
        except RedisError as error:
            raise self._unavailable(error) from error
        self._answered()
        return result

    async def call_async(self, action: Callable[[redis.asyncio.Redis], Awaitable[T]]) -> T:
        """`call` for a coroutine on an asyncio client of the running event loop (one per
        loop, same timeouts), with the same breaker: an event loop never waits on a thread."""
        self._before_call()
        from redis import RedisError

        try:
            result = await action(self._async_client())
        except RedisError as error:
            raise self._unavailable(error) from error
        self._answered()
        return result

    def _unavailable(self, error: Exception) -> RedisUnavailable:
        """A Redis error: the outage noted (or prolonged), and what the caller raises."""
        detail = self._scrub(describe(error))
        self._failed(detail)
        return RedisUnavailable(self.safe_url, self.purpose, detail)

    def _answered(self) -> None:
        if self.degraded:
            self._recovered()

    def _async_client(self) -> redis.asyncio.Redis:
        loop = asyncio.get_running_loop()
        client = self._async_clients.get(loop)
        if client is None:
            client = connect_async(self._url, command_timeout=self._command_timeout)
            self._async_clients[loop] = client
        return client

    async def aclose(self) -> None:
        """Close the running loop's asyncio client (the sync one: `close`)."""
        client = self._async_clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()

    def _before_call(self) -> None:
        """`RedisUnavailable` at once while an outage is waited out; else the call may go (the
        first one after the wait is the probe)."""
        with self._lock:
            now = self._clock()
            if self.degraded:
                if now < self._next_probe_at:
                    self._skipped += 1
                    self._warn_if_due(now)
                    wait = self._next_probe_at - now
                    raise RedisUnavailable(
                        self.safe_url, self.purpose, f"down; next probe in {wait:.1f} s"
                    )
                # This call is the probe: hold other callers off until it has an answer.
                self._next_probe_at = now + self._backoff.wait_after(self._failures)

    def close(self) -> None:
        self._client.close()

    def _failed(self, detail: str) -> None:
        with self._lock:
            now = self._clock()
            self._failures += 1
            self._skipped += 1
            self._next_probe_at = now + self._backoff.wait_after(self._failures)
            if self._outage_started is None:
                self._outage_started = now
                self._last_warning_at = now
                logger.warning(
                    "Redis for %s at %s is unavailable (%s); working without it until it "
                    "answers again (the database stays the truth)",
                    self.purpose,
                    self.safe_url,
                    detail,
                )
            else:
                self._warn_if_due(now)

    def _warn_if_due(self, now: float) -> None:
        if self._outage_started is None or now - self._last_warning_at < self._warn_every:
            return
        self._last_warning_at = now
        logger.warning(
            "Redis for %s at %s still unavailable after %.0f s (%d operations skipped); "
            "next probe in %.1f s",
            self.purpose,
            self.safe_url,
            now - self._outage_started,
            self._skipped,
            max(self._next_probe_at - now, 0.0),
        )

    def _recovered(self) -> None:
        with self._lock:
            if self._outage_started is None:
                return
            logger.info(
                "Redis for %s at %s available again after %.1f s (%d operations skipped)",
                self.purpose,
                self.safe_url,
                self._clock() - self._outage_started,
                self._skipped,
            )
            self._outage_started = None
            self._failures = 0
            self._skipped = 0
            self._next_probe_at = 0.0

    def _scrub(self, text: str) -> str:
        return text.replace(self._password, "***") if self._password else text
