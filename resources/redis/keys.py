"""The Redis key space: every key starts with its tenant, so no read or write crosses tenants.

- ``indorch:<tenant>:events``: the tenant's live session events (a stream)
- ``indorch:<tenant>:session:<session id>``: one session's live events (a capped stream)
- ``indorch:<tenant>:agent:<agent id>:heartbeat``: one agent's last heartbeat (a hash with TTL)
- ``indorch:<tenant>:heartbeats``: the agents that beat recently (a set, the index of the above)
- ``indorch:<tenant>:api-rate:<window>``: the tenant's API requests in one rate window (a counter)
- ``indorch:<tenant>:debounce:<name>``: a short-lived marker, the first of a burst to set it acts

No key is built without a tenant (`TenantNotSet`), and a part that could break the structure (a
colon, a glob character, whitespace) is refused (`InvalidInput`): one tenant's id can never spell
another tenant's key, and ``indorch:<tenant>:*`` matches exactly that tenant's keys.
"""

from __future__ import annotations

import re

from domain.errors import InvalidInput, TenantNotSet
from domain.tenant import slug_problem

PREFIX = "indorch"
_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")


def _tenant(tenant_id: str) -> str:
    if not tenant_id:
        raise TenantNotSet("building a Redis key")
    problem = slug_problem(tenant_id)
    if problem:
        raise InvalidInput("tenant_id", problem)
    return tenant_id


def _id(field: str, value: str) -> str:
    if not value or not _ID_PATTERN.fullmatch(value):
        raise InvalidInput(field, f"{value!r} must match {_ID_PATTERN.pattern}")
    return value


def tenant_events_key(tenant_id: str) -> str:
    return f"{PREFIX}:{_tenant(tenant_id)}:events"


def session_events_key(tenant_id: str, session_id: str) -> str:
    return f"{PREFIX}:{_tenant(tenant_id)}:session:{_id('session_id', session_id)}"


def heartbeat_key(tenant_id: str, agent_id: str) -> str:
    return f"{PREFIX}:{_tenant(tenant_id)}:agent:{_id('agent_id', agent_id)}:heartbeat"


def heartbeat_index_key(tenant_id: str) -> str:
    return f"{PREFIX}:{_tenant(tenant_id)}:heartbeats"


def api_rate_key(tenant_id: str, window: int) -> str:
    return f"{PREFIX}:{_tenant(tenant_id)}:api-rate:{int(window)}"


def debounce_key(tenant_id: str, name: str) -> str:
    return f"{PREFIX}:{_tenant(tenant_id)}:debounce:{_id('name', name)}"
