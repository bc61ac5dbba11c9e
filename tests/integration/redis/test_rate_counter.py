"""The API's per-tenant request count in Redis: each hit counts once, threads' and event loops'
hits share the count, the key expires two windows after its last hit, tenants and windows are
counted apart, and it is one command per hit (a script: no MULTI/INCR/EXPIRE/EXEC round of four),
which Redis runs again after losing its script cache."""

from __future__ import annotations

import asyncio

import redis

from resources.redis.keys import api_rate_key
from resources.redis.rate_counter import RedisRateCounter
from tests.integration.redis.conftest import RedisServerProcess


def test_sync_and_async_hits_share_one_count_per_tenant_and_window(
    redis_url: str, redis_client: redis.Redis, tenant: str, other_tenant: str
) -> None:
    counter = RedisRateCounter(redis_url)

    async def from_a_loop() -> list[int]:
        try:
            return [await counter.hit_async(tenant, 7, 60) for _ in range(2)]
        finally:
            await counter.aclose()

    try:
        assert [counter.hit(tenant, 7, 60) for _ in range(3)] == [1, 2, 3]
        assert asyncio.run(from_a_loop()) == [4, 5]
        assert counter.hit(tenant, 8, 60) == 1  # the next window
        assert counter.hit(other_tenant, 7, 60) == 1
    finally:
        counter.close()
    assert redis_client.get(api_rate_key(tenant, 7)) == "5"
    assert 110 <= redis_client.ttl(api_rate_key(tenant, 7)) <= 120  # two windows


def test_one_command_per_hit_and_the_script_survives_a_flushed_cache(
    own_redis: RedisServerProcess,
) -> None:
    client = redis.Redis.from_url(own_redis.url, decode_responses=True)
    counter = RedisRateCounter(own_redis.url)
    try:
        assert counter.hit("acme", 1, 10) == 1  # loads the script
        client.config_resetstat()
        for _ in range(10):
            counter.hit("acme", 1, 10)
        stats = client.info("commandstats")
        calls = {name: figures["calls"] for name, figures in stats.items()}
        assert calls.get("cmdstat_evalsha") == 10  # (the INCR and EXPIRE inside it count too)
        assert not {"cmdstat_multi", "cmdstat_exec"} & set(calls)
        client.script_flush()
        assert counter.hit("acme", 1, 10) == 12

        async def from_a_loop() -> int:
            try:
                return await counter.hit_async("acme", 1, 10)
            finally:
                await counter.aclose()

        assert asyncio.run(from_a_loop()) == 13
        assert 0 < client.ttl(api_rate_key("acme", 1)) <= 20
    finally:
        counter.close()
        client.close()
