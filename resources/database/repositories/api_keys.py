"""API keys of a tenant: created once (the plaintext is returned, never stored), then verified."""

from __future__ import annotations

import hmac
from datetime import timedelta

from sqlalchemy import select

from domain.api_key import DISPLAY_PREFIX_LENGTH, ApiKey, generate_api_key, hash_api_key
from domain.clock import utcnow
from domain.errors import NotFound
from domain.tenant import Role
from resources.database.repositories.base import TenantScopedRepository
from resources.database.repositories.users import UserRepository
from resources.database.schema import ApiKeyRow

LAST_USED_RESOLUTION = timedelta(minutes=1)  # `last_used_at` is kept to the minute


def _to_domain(row: ApiKeyRow) -> ApiKey:
    return ApiKey(
        id=row.id,
        tenant_id=row.tenant_id,
        user_id=row.user_id,
        name=row.name,
        prefix=row.prefix,
        role=Role(row.role),
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


class ApiKeyRepository(TenantScopedRepository):
    def create(
        self, name: str, role: Role = Role.MEMBER, user_id: str | None = None
    ) -> tuple[ApiKey, str]:
        """A new key for the current tenant: the record, and the plaintext to show once."""
        tenant = self.tenant_id
        if user_id is not None:
            UserRepository(self._session).get(user_id)  # NotFound across tenants
        plaintext = generate_api_key()
        key = ApiKey(
            tenant_id=tenant,
            user_id=user_id,
            name=name,
            prefix=plaintext[:DISPLAY_PREFIX_LENGTH],
            role=role,
        )
        self._session.add(
            ApiKeyRow(
                id=key.id,
                tenant_id=tenant,
                user_id=user_id,
                name=key.name,
                prefix=key.prefix,
                key_hash=hash_api_key(plaintext),
                role=role.value,
                created_at=key.created_at,
            )
        )
        self._session.flush()
        return key, plaintext

    def authenticate(self, plaintext: str) -> ApiKey:
        """The active key of the current tenant with this plaintext, else `NotFound`."""
        digest = hash_api_key(plaintext)
        row = self._session.scalars(
            select(ApiKeyRow).where(
                ApiKeyRow.tenant_id == self.tenant_id, ApiKeyRow.key_hash == digest
            )
        ).first()
        if (
            row is None
            or row.revoked_at is not None
            or not hmac.compare_digest(row.key_hash, digest)
        ):
            raise NotFound("api key", plaintext[:DISPLAY_PREFIX_LENGTH])
        now = utcnow()
        last = row.last_used_at
        if last is not None and last.tzinfo is None:  # SQLite gives naive UTC back
            last = last.replace(tzinfo=now.tzinfo)
        if last is None or now - last >= LAST_USED_RESOLUTION:
            # At most one write a minute per key: every API request authenticates, and a write
            # per request would serialize them on SQLite (and cost a commit on any database).
            row.last_used_at = now
            self._session.flush()
        return _to_domain(row)

    def list(self) -> list[ApiKey]:
        query = (
            select(ApiKeyRow)
            .where(ApiKeyRow.tenant_id == self.tenant_id)
            .order_by(ApiKeyRow.created_at)
        )
        return [_to_domain(row) for row in self._session.scalars(query)]

    def revoke(self, key_id: str) -> ApiKey:
        row = self._session.scalars(
            select(ApiKeyRow).where(ApiKeyRow.tenant_id == self.tenant_id, ApiKeyRow.id == key_id)
        ).first()
        if row is None:
            raise NotFound("api key", key_id)
        row.revoked_at = row.revoked_at or utcnow()
        self._session.flush()
        return _to_domain(row)
