"""Per-tenant request counts in fixed windows, shared by every API process through Redis.

One INCR (and an EXPIRE, in the same transaction) per request on
``indorch:<tenant>:api-rate:<window>``; the key outlives its window a little and then expires.
Redis unavailable: `RedisUnavailable`, and the API counts in its own process meanwhile
(`api.rate_limits`).
"""

from __future__ import annotations

from resources.redis.keys import api_rate_key
from resources.redis.link import RedisLink


class RedisRateCounter:
    def __init__(self, url: str) -> None:
        self._link = RedisLink(url, "API rate limits")

    def hit(self, tenant_id: str, window: int, window_seconds: int) -> int:
        """This request counted: the tenant's requests in `window` so far (this one included)."""
        key = api_rate_key(tenant_id, window)

        def count(client) -> int:
            pipe = client.pipeline(transaction=True)
            pipe.incr(key)
            pipe.expire(key, window_seconds * 2)
            return int(pipe.execute()[0])

        return self._link.call(count)

    async def hit_async(self, tenant_id: str, window: int, window_seconds: int) -> int:
        """`hit` from the event loop, without a worker thread."""
        key = api_rate_key(tenant_id, window)

        async def count(client) -> int:
            pipe = client.pipeline(transaction=True)
            pipe.incr(key)
            pipe.expire(key, window_seconds * 2)
            return int((await pipe.execute())[0])

        return await self._link.call_async(count)

    @property
    def degraded(self) -> bool:
        return self._link.degraded

    def close(self) -> None:
        self._link.close()

    async def aclose(self) -> None:
        await self._link.aclose()
