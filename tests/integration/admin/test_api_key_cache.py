"""An authenticated key is remembered for at most `KEY_CACHE_SECONDS` (the API checks one per
request). A change made in this process (revoke, suspend, demote, deactivate) takes effect at
once; one made by another process (the CLI, another API worker) within that bound."""

from __future__ import annotations

import pytest

from domain.errors import KeyRefused
from domain.tenant import Role, User
from resources.database import Database
from services.authentication import KEY_CACHE_SECONDS, KeyCache
from services.factory import ServiceFactory
from tests.integration.admin.conftest import OPERATOR


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _other_process(services: ServiceFactory) -> ServiceFactory:
    """Services on their own `Database` and cache, as another process has them."""
    return ServiceFactory(Database(services.database.url.render_as_string(False)))


def test_a_key_revoked_by_another_process_is_refused_once_the_bound_passes(
    services: ServiceFactory, tenant: str
) -> None:
    clock = _Clock()
    api = ServiceFactory(services.database, key_cache=KeyCache(KEY_CACHE_SECONDS, clock))
    key, plaintext = api.api_keys().create(OPERATOR, tenant, "ci", role=Role.MEMBER)
    # The first use notes the key's last use, a write to the key that is not remembered.
    for _ in range(2):
        assert api.authentication().authenticate(tenant, plaintext).role is Role.MEMBER

    cli = _other_process(services)
    try:
        cli.api_keys().revoke(OPERATOR, tenant, key.id)
        clock.now += KEY_CACHE_SECONDS - 0.5  # still within the bound: remembered
        assert api.authentication().authenticate(tenant, plaintext).role is Role.MEMBER
        clock.now += 0.5  # the bound has passed: the database answers
        with pytest.raises(KeyRefused):
            api.authentication().authenticate(tenant, plaintext)
        # and a refused key is not remembered as good later either
        clock.now += KEY_CACHE_SECONDS
        with pytest.raises(KeyRefused):
            api.authentication().authenticate(tenant, plaintext)
    finally:
        cli.database.dispose()


def test_a_users_suspension_by_another_process_is_refused_once_the_bound_passes(
    services: ServiceFactory, tenant: str
) -> None:
    clock = _Clock()
    api = ServiceFactory(services.database, key_cache=KeyCache(KEY_CACHE_SECONDS, clock))
    user = api.users().create(OPERATOR, User(tenant_id=tenant, email="a@x.io", role=Role.ADMIN))
    _, plaintext = api.api_keys().create(
        OPERATOR, tenant, "ci", role=Role.ADMIN, user_email=user.email
    )
    for _ in range(2):
        api.authentication().authenticate(tenant, plaintext)
    cli = _other_process(services)
    try:
        cli.users().suspend(OPERATOR, tenant, user.email)
        clock.now += KEY_CACHE_SECONDS
        with pytest.raises(KeyRefused):
            api.authentication().authenticate(tenant, plaintext)
    finally:
        cli.database.dispose()


def test_a_key_revoked_in_this_process_is_refused_at_once(
    services: ServiceFactory, tenant: str
) -> None:
    clock = _Clock()  # never moves: only the invalidation can refuse the key
    api = ServiceFactory(services.database, key_cache=KeyCache(KEY_CACHE_SECONDS, clock))
    key, plaintext = api.api_keys().create(OPERATOR, tenant, "ci", role=Role.MEMBER)
    for _ in range(2):
        api.authentication().authenticate(tenant, plaintext)
    api.api_keys().revoke(OPERATOR, tenant, key.id)
    with pytest.raises(KeyRefused):
        api.authentication().authenticate(tenant, plaintext)


def test_a_remembered_key_is_only_good_for_its_own_tenant(
    services: ServiceFactory, tenant: str, other_tenant: str
) -> None:
    _, plaintext = services.api_keys().create(OPERATOR, tenant, "ci", role=Role.MEMBER)
    services.authentication().authenticate(tenant, plaintext)
    with pytest.raises(KeyRefused):
        services.authentication().authenticate(other_tenant, plaintext)


def test_the_bound_is_a_few_seconds() -> None:
    assert 0 < KEY_CACHE_SECONDS <= 5
