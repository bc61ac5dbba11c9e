"""Agent heartbeats in Redis: which agents of a tenant beat within the last TTL, and their load.

The database stays the truth (agents carry `last_heartbeat_at`, written at its own pace); this
is the fast view for routing. A beat writes the hash ``indorch:<tenant>:agent:<id>:heartbeat``
(load, healthy, at) that expires after the TTL, and adds the agent to the tenant's index set
``indorch:<tenant>:heartbeats``, which expires with the last beat (see `resources.redis.keys`).
One hash per agent because per-field expiry (HEXPIRE) needs Redis 7.4.

With Redis unavailable, `beat` returns False and `alive` returns {} and the store reports
`degraded`: callers then go by the database's `last_heartbeat_at`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from domain.clock import utcnow
from resources.redis.keys import heartbeat_index_key, heartbeat_key
from resources.redis.link import ProbeBackoff, RedisLink, RedisUnavailable

if TYPE_CHECKING:
    import redis

DEFAULT_TTL_SECONDS = 30.0

# Drop index members whose heartbeat hash has expired, atomically: an agent that beats again at
# the same moment is never removed after its SADD.
_FORGET_EXPIRED = """
for i, agent_id in ipairs(ARGV) do
  if redis.call('EXISTS', KEYS[i + 1]) == 0 then
    redis.call('SREM', KEYS[1], agent_id)
  end
end
return 0
"""


@dataclass(frozen=True)
class HeartbeatInfo:
    """An agent's last beat: its load (sessions in progress), health, and when (UTC)."""

    agent_id: str
    load: int
    healthy: bool
    at: datetime


class HeartbeatStore:
    def __init__(
        self,
        url: str,
        *,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        probe_backoff: ProbeBackoff | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        if ttl_seconds <= 0:
            raise ValueError(f"ttl_seconds must be positive, got {ttl_seconds}")
        self._link = RedisLink(url, "agent heartbeats", probe_backoff=probe_backoff)
        self._ttl_ms = max(int(ttl_seconds * 1000), 1)
        self._clock = clock

    @property
    def ttl_seconds(self) -> float:
        return self._ttl_ms / 1000

    @property
    def degraded(self) -> bool:
        return self._link.degraded

    def beat(self, tenant_id: str, agent_id: str, load: int, healthy: bool) -> bool:
        """Record a beat; False when Redis is unavailable (the beat is lost, never raised)."""
        key = heartbeat_key(tenant_id, agent_id)
        index = heartbeat_index_key(tenant_id)
        fields = {
            "load": str(load),
            "healthy": "1" if healthy else "0",
            "at": self._clock().isoformat(),
        }

        def write(client: redis.Redis) -> None:
            pipeline = client.pipeline(transaction=True)
            pipeline.hset(key, mapping=fields)
            pipeline.pexpire(key, self._ttl_ms)
            pipeline.sadd(index, agent_id)
            pipeline.pexpire(index, self._ttl_ms)
            pipeline.execute()

        try:
            self._link.call(write)
        except RedisUnavailable:
            return False
        return True

    def alive(self, tenant_id: str) -> dict[str, HeartbeatInfo]:
        """The tenant's agents whose last beat is younger than the TTL, by agent id; {} when
        Redis is unavailable (see `degraded`)."""
        index = heartbeat_index_key(tenant_id)

        def read(client: redis.Redis) -> dict[str, HeartbeatInfo]:
            agent_ids = sorted(client.smembers(index))
            if not agent_ids:
                return {}
            keys = [heartbeat_key(tenant_id, agent_id) for agent_id in agent_ids]
            pipeline = client.pipeline(transaction=False)
            for key in keys:
                pipeline.hgetall(key)
            rows = pipeline.execute()
            expired = [agent_id for agent_id, row in zip(agent_ids, rows, strict=True) if not row]
            if expired:
                expired_keys = [heartbeat_key(tenant_id, agent_id) for agent_id in expired]
                client.eval(_FORGET_EXPIRED, 1 + len(expired), index, *expired_keys, *expired)
            return {
                agent_id: _info(agent_id, row)
                for agent_id, row in zip(agent_ids, rows, strict=True)
                if row
            }

        try:
            return self._link.call(read)
        except RedisUnavailable:
            return {}

    def close(self) -> None:
        self._link.close()


def _info(agent_id: str, row: dict[str, str]) -> HeartbeatInfo:
    return HeartbeatInfo(
        agent_id=agent_id,
        load=int(row["load"]),
        healthy=row["healthy"] == "1",
        at=datetime.fromisoformat(row["at"]),
    )
