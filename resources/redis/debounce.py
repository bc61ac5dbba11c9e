"""A per-tenant debounce shared by every process through Redis: the first of a burst acts.

One `SET indorch:<tenant>:debounce:<name> 1 NX PX <ms>`: the caller that sets it is first until
it expires. Redis unavailable: this process keeps its own marks meanwhile (several processes may
then each act once per window; acting twice is harmless, only wasteful).
"""

from __future__ import annotations

from resources.debounce import InProcessDebounce
from resources.redis.keys import debounce_key
from resources.redis.link import RedisLink, RedisUnavailable


class RedisDebounce:
    def __init__(self, url: str) -> None:
        self._link = RedisLink(url, "debounce")
        self._here = InProcessDebounce()

    def first(self, tenant_id: str, name: str, seconds: float) -> bool:
        key = debounce_key(tenant_id, name)
        milliseconds = max(1, int(seconds * 1000))
        try:
            return bool(self._link.call(lambda c: c.set(key, "1", nx=True, px=milliseconds)))
        except RedisUnavailable:
            return self._here.first(tenant_id, name, seconds)

    def close(self) -> None:
        self._link.close()
