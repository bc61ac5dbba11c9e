"""Per-tenant request counts in fixed windows, shared by every API process through Redis.

One command per request: a script that INCRs ``indorch:<tenant>:api-rate:<window>`` and sets it
to expire two windows later (atomic, as the MULTI/INCR/EXPIRE/EXEC it replaces, at a quarter of
the commands and replies: the count was the largest part of a submission's CPU on the event
loop). Called by its SHA1; Redis that lost its script cache (a restart, SCRIPT FLUSH) is sent the
script itself once, which caches it again. Redis unavailable: `RedisUnavailable`, and the API
counts in its own process meanwhile (`api.bounds`).
"""

from __future__ import annotations

import hashlib

from redis.exceptions import NoScriptError

from resources.redis.keys import api_rate_key
from resources.redis.link import RedisLink

_COUNT = """
local count = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[1])
return count
"""
_COUNT_SHA = hashlib.sha1(_COUNT.encode()).hexdigest()


class RedisRateCounter:
    def __init__(self, url: str) -> None:
        self._link = RedisLink(url, "API rate limits")

    def hit(self, tenant_id: str, window: int, window_seconds: int) -> int:
        """This request counted: the tenant's requests in `window` so far (this one included)."""
        key, ttl = api_rate_key(tenant_id, window), window_seconds * 2

        def count(client) -> int:
            try:
                return int(client.evalsha(_COUNT_SHA, 1, key, ttl))
            except NoScriptError:
                return int(client.eval(_COUNT, 1, key, ttl))

        return self._link.call(count)

    async def hit_async(self, tenant_id: str, window: int, window_seconds: int) -> int:
        """`hit` from the event loop, without a worker thread."""
        key, ttl = api_rate_key(tenant_id, window), window_seconds * 2

        async def count(client) -> int:
            try:
                return int(await client.evalsha(_COUNT_SHA, 1, key, ttl))
            except NoScriptError:
                return int(await client.eval(_COUNT, 1, key, ttl))

        return await self._link.call_async(count)

    @property
    def degraded(self) -> bool:
        return self._link.degraded

    def close(self) -> None:
        self._link.close()

    async def aclose(self) -> None:
        await self._link.aclose()
