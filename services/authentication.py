"""Who an API key is: the caller every service then checks roles against.

A key acts for its tenant with its own role capped at its user's role now (a user demoted
after the key was made demotes the key); it is refused (`KeyRefused`, one answer for every
cause) when unknown or revoked, when its tenant is deleted or deactivated, or when its user is
suspended or gone.

A key that authenticated is remembered for at most `KEY_CACHE_SECONDS` (the API checks one per
request: this spares a transaction each). A change made through this process (`Database`'s
`credential_generation`) drops what is remembered at once; one made by another process (the CLI,
another API worker) takes effect within the bound. A refused key is never remembered.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import NamedTuple

from domain.api_key import hash_api_key
from domain.caller import Caller
from domain.errors import KeyRefused, NotFound, TenantNotSet
from resources.database import Database, tenant_scope, unit_of_work

KEY_CACHE_SECONDS = 5.0
KEY_CACHE_ENTRIES = 10_000  # past it the cache starts over (keys in use are few per process)


class _Remembered(NamedTuple):
    caller: Caller
    generation: int
    until: float


class KeyCache:
    """Callers of recently authenticated keys, by tenant and key hash (never the key itself)."""

    def __init__(
        self, seconds: float = KEY_CACHE_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._seconds = seconds
        self._clock = clock
        self._entries: dict[tuple[str, str], _Remembered] = {}
        self._lock = threading.Lock()

    def get(self, tenant_id: str, digest: str, generation: int) -> Caller | None:
        entry = self._entries.get((tenant_id, digest))
        if entry is None or entry.generation != generation or self._clock() >= entry.until:
            return None
        return entry.caller

    def put(self, tenant_id: str, digest: str, generation: int, caller: Caller) -> None:
        if self._seconds <= 0:
            return
        with self._lock:
            if len(self._entries) >= KEY_CACHE_ENTRIES:
                self._entries.clear()
            until = self._clock() + self._seconds
            self._entries[(tenant_id, digest)] = _Remembered(caller, generation, until)


class Authentication:
    def __init__(self, database: Database, cache: KeyCache | None = None) -> None:
        self._database = database
        self._cache = cache

    def remembered(self, tenant_id: str, plaintext: str) -> Caller | None:
        """The caller of a key authenticated moments ago (no database: fit for an event loop),
        or None: `authenticate` decides."""
        if self._cache is None:
            return None
        generation = self._database.credential_generation
        return self._cache.get(tenant_id, hash_api_key(plaintext), generation)

    def authenticate(self, tenant_id: str, plaintext: str) -> Caller:
        """The caller `plaintext` (a key of `tenant_id`) acts as, else `KeyRefused`."""
        if self._cache is None:
            return self._authenticate(tenant_id, plaintext)
        digest = hash_api_key(plaintext)
        generation = self._database.credential_generation  # read before the database is
        caller = self._cache.get(tenant_id, digest, generation)
        if caller is None:
            caller = self._authenticate(tenant_id, plaintext)
            self._cache.put(tenant_id, digest, generation, caller)
        return caller

    def _authenticate(self, tenant_id: str, plaintext: str) -> Caller:
        try:
            with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
                if not uow.tenants.get(tenant_id).active:
                    raise KeyRefused()
                key = uow.api_keys.authenticate(plaintext)
                role = key.role
                if key.user_id is not None:
                    user = uow.users.get(key.user_id)
                    if not user.active:
                        raise KeyRefused()
                    role = role.capped_at(user.role)
        except (NotFound, TenantNotSet):
            raise KeyRefused() from None
        return Caller.for_tenant(tenant_id, role, user_id=key.user_id)
