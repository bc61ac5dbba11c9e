"""The API's bounds: the largest body it reads (413) and each tenant's request rate (429).

A body is refused from its Content-Length before it is read, and a body sent without one
(chunked) is cut off as soon as it passes the limit. The rate is counted per tenant, after its key
is verified (a stranger naming a tenant spends none of its allowance), in fixed windows: in Redis
when configured, so every API process shares the count; in this process while Redis is absent or
down. An answer 429 says when to try again (`Retry-After`, in seconds).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import ApiError, error_response

if TYPE_CHECKING:
    from resources.redis.rate_counter import RedisRateCounter

PAYLOAD_TOO_LARGE = "payload_too_large"


@dataclass(frozen=True)
class ApiBounds:
    max_body_bytes: int
    rate_limit: int  # requests per tenant per window; 0: unlimited
    rate_window_seconds: int

    @classmethod
    def from_settings(cls) -> ApiBounds:
        from resources.settings import api_max_body_bytes, api_rate_limit, api_rate_window_seconds

        return cls(api_max_body_bytes(), api_rate_limit(), api_rate_window_seconds())


def _too_large(limit: int) -> str:
    return f"the request body is over the limit of {limit:,} bytes"


class BodySizeLimit:
    """ASGI middleware: 413 with the one error body for a request body over `max_bytes`."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            response = error_response(413, PAYLOAD_TOO_LARGE, _too_large(self.max_bytes))
            await response(scope, receive, send)
            return
        received = 0
        started = False

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # FastAPI passes an HTTPException raised while reading the body through.
                    raise HTTPException(413, _too_large(self.max_bytes))
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited, tracked)
        except HTTPException as error:  # raised outside a route (no handler saw it)
            if started or error.status_code != 413:
                raise
            response = error_response(413, PAYLOAD_TOO_LARGE, str(error.detail))
            await response(scope, receive, send)


class LocalRateCounter:
    """The same fixed windows in this process alone: the fallback while Redis is away."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()

    def hit(self, tenant_id: str, window: int, window_seconds: int) -> int:
        with self._lock:
            if len(self._counts) > 10_000:  # old windows go; the current ones stay
                self._counts = {k: v for k, v in self._counts.items() if k[1] >= window}
            key = (tenant_id, window)
            self._counts[key] = self._counts.get(key, 0) + 1
            return self._counts[key]


class RateLimiter:
    def __init__(
        self,
        limit: int,
        window_seconds: int,
        redis: RedisRateCounter | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.limit = limit
        self.window_seconds = window_seconds
        self._redis = redis
        self._local = LocalRateCounter()
        self._clock = clock

    @classmethod
    def for_wiring(cls, bounds: ApiBounds, redis_url: str | None) -> RateLimiter:
        counter = None
        if redis_url and bounds.rate_limit:
            from resources.redis.rate_counter import RedisRateCounter

            counter = RedisRateCounter(redis_url)
        return cls(bounds.rate_limit, bounds.rate_window_seconds, counter)

    def admit(self, tenant_id: str) -> None:
        """Count the request; `ApiError` 429 with `Retry-After` when the tenant is over."""
        if not self.limit:
            return
        now = self._clock()
        window = int(now // self.window_seconds)
        self._refuse_over(self._count(tenant_id, window), now, window)

    async def admit_async(self, tenant_id: str) -> None:
        """`admit` from the event loop: Redis is asked there, not from a worker thread (a
        thread hop costs a request more CPU than the count itself)."""
        if not self.limit:
            return
        now = self._clock()
        window = int(now // self.window_seconds)
        self._refuse_over(await self._count_async(tenant_id, window), now, window)

    async def _count_async(self, tenant_id: str, window: int) -> int:
        if self._redis is not None:
            from resources.redis.link import RedisUnavailable

            try:
                return await self._redis.hit_async(tenant_id, window, self.window_seconds)
            except RedisUnavailable:
                pass  # the link logs the outage; this process counts meanwhile
        return self._local.hit(tenant_id, window, self.window_seconds)

    def _refuse_over(self, count: int, now: float, window: int) -> None:
        if count > self.limit:
            retry_after = max(1, math.ceil((window + 1) * self.window_seconds - now))
            raise ApiError(
                429,
                "rate_limited",
                f"over {self.limit} requests in {self.window_seconds} s for this tenant: "
                f"try again in {retry_after} s",
                {"limit": self.limit, "window_seconds": self.window_seconds},
                headers={"Retry-After": str(retry_after)},
            )

    def _count(self, tenant_id: str, window: int) -> int:
        if self._redis is not None:
            from resources.redis.link import RedisUnavailable

            try:
                return self._redis.hit(tenant_id, window, self.window_seconds)
            except RedisUnavailable:
                pass  # the link logs the outage; this process counts meanwhile
        return self._local.hit(tenant_id, window, self.window_seconds)

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()

    async def aclose(self) -> None:
        """Close the connection the running event loop opened (`admit_async`)."""
        if self._redis is not None:
            await self._redis.aclose()
