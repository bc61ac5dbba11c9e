"""Every Redis key starts with the tenant, and no key can be built without one.

A key part that could collide with the key structure (a colon, a glob character, whitespace) is
refused, so no tenant's id can ever name another tenant's key.
"""

from __future__ import annotations

import pytest

from domain.errors import InvalidInput, TenantNotSet
from resources.redis.keys import (
    heartbeat_index_key,
    heartbeat_key,
    session_events_key,
    tenant_events_key,
)


def test_keys_are_prefixed_by_the_tenant() -> None:
    assert tenant_events_key("acme") == "indorch:acme:events"
    assert session_events_key("acme", "IND-01J") == "indorch:acme:session:IND-01J"
    assert heartbeat_key("acme", "AGENT-7") == "indorch:acme:agent:AGENT-7:heartbeat"
    assert heartbeat_index_key("acme") == "indorch:acme:heartbeats"


@pytest.mark.parametrize("tenant", ["", None])
def test_a_key_without_a_tenant_is_refused(tenant: str | None) -> None:
    with pytest.raises(TenantNotSet):
        tenant_events_key(tenant)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "tenant",
    [
        "acme:session",  # a colon would let one tenant's id spell another key
        "acme*",  # a glob character would widen a SCAN pattern
        "Acme",  # slugs are lowercase
        "a b",  # whitespace
    ],
)
def test_a_malformed_tenant_is_refused(tenant: str) -> None:
    with pytest.raises(InvalidInput, match="tenant_id"):
        tenant_events_key(tenant)


@pytest.mark.parametrize(
    "session_id",
    [
        "",  # empty
        "IND-1:events",  # a colon
        "IND-[1]",  # glob characters
    ],
)
def test_a_malformed_session_id_is_refused(session_id: str) -> None:
    with pytest.raises(InvalidInput, match="session_id"):
        session_events_key("acme", session_id)


def test_a_malformed_agent_id_is_refused() -> None:
    with pytest.raises(InvalidInput, match="agent_id"):
        heartbeat_key("acme", "AGENT 1")
