"""The per-tenant debounce shared through Redis (the wave trigger's: one launch per burst).

Contract: of many callers (processes) of one tenant's name within the window, exactly one is
first; another tenant's is independent; once the window has passed, the next caller is first
again; with Redis down, the debounce still answers (in this process) instead of failing.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from resources.redis.debounce import RedisDebounce
from tests.integration.redis.conftest import RedisServerProcess

WINDOW_SECONDS = 5.0


def test_of_a_burst_across_processes_exactly_one_caller_is_first(
    redis_url: str, tenant: str, other_tenant: str
) -> None:
    debounces = [RedisDebounce(redis_url) for _ in range(8)]  # one client each, like processes
    try:
        with ThreadPoolExecutor(8) as pool:
            answers = list(
                pool.map(lambda d: d.first(tenant, "wave-trigger", WINDOW_SECONDS), debounces * 5)
            )
        assert answers.count(True) == 1
        assert debounces[0].first(other_tenant, "wave-trigger", WINDOW_SECONDS)
    finally:
        for debounce in debounces:
            debounce.close()


def test_once_the_window_has_passed_the_next_caller_is_first_again(
    redis_url: str, tenant: str
) -> None:
    debounce = RedisDebounce(redis_url)
    try:
        assert debounce.first(tenant, "wave-trigger", 0.05)
        time.sleep(0.2)  # the key's expiry, kept by Redis
        assert debounce.first(tenant, "wave-trigger", 0.05)
    finally:
        debounce.close()


def test_with_redis_down_the_debounce_answers_in_this_process(
    own_redis: RedisServerProcess,
) -> None:
    debounce = RedisDebounce(own_redis.url)
    own_redis.kill()
    try:
        assert debounce.first("acme", "wave-trigger", WINDOW_SECONDS)
        assert not debounce.first("acme", "wave-trigger", WINDOW_SECONDS)
    finally:
        debounce.close()
