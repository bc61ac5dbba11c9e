"""A per-tenant debounce kept in this process: the first caller of a tenant's name in a window
acts. The wave trigger's when no Redis is configured, and Redis's stand-in while it is down
(`resources.redis.debounce`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class InProcessDebounce:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._until: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def first(self, tenant_id: str, name: str, seconds: float) -> bool:
        key = (tenant_id, name)
        with self._lock:
            now = self._clock()
            if self._until.get(key, 0.0) > now:
                return False
            self._until[key] = now + seconds
            return True
