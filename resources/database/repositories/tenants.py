"""Tenants: the platform-level registry (not tenant-scoped: it is what scopes everything else)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from domain.clock import utcnow
from domain.errors import AlreadyExists, NotFound
from domain.tenant import Tenant
from resources.database.schema import TenantRow


def tenant_from_row(row: Any) -> Tenant:
    """The tenant of a `TenantRow`, or of any row with its columns (a Core query's)."""
    return Tenant(
        slug=row.slug,
        name=row.name,
        active=row.active,
        max_concurrent_sessions=row.max_concurrent_sessions,
        monthly_token_budget=row.monthly_token_budget,
        created_at=row.created_at,
    )


class TenantRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, tenant: Tenant) -> Tenant:
        if self._session.get(TenantRow, tenant.slug) is not None:
            raise AlreadyExists("tenant", tenant.slug)
        self._session.add(
            TenantRow(
                slug=tenant.slug,
                name=tenant.name,
                active=tenant.active,
                max_concurrent_sessions=tenant.max_concurrent_sessions,
                monthly_token_budget=tenant.monthly_token_budget,
                created_at=tenant.created_at,
            )
        )
        try:
            self._session.flush()
        except IntegrityError as error:  # a concurrent create won the race
            raise AlreadyExists("tenant", tenant.slug) from error
        return tenant

    def _row(self, slug: str) -> TenantRow:
        row = self._session.get(TenantRow, slug)
        if row is None or row.deleted_at is not None:
            raise NotFound("tenant", slug)
        return row

    def get(self, slug: str) -> Tenant:
        return tenant_from_row(self._row(slug))

    def get_for_update(self, slug: str) -> Tenant:
        """The tenant, its row locked until the transaction ends (serializes quota decisions)."""
        if self._session.get_bind().dialect.name == "sqlite":
            # No row locks in SQLite: a write takes the database's write lock for the rest of
            # the transaction, so a concurrent claimer waits here instead of counting stale rows.
            self._session.execute(
                update(TenantRow).where(TenantRow.slug == slug).values(slug=TenantRow.slug)
            )
        row = self._session.scalars(
            select(TenantRow)
            .where(TenantRow.slug == slug, TenantRow.deleted_at.is_(None))
            .with_for_update()
        ).first()
        if row is None:
            raise NotFound("tenant", slug)
        return tenant_from_row(row)

    def list(self, include_inactive: bool = True) -> list[Tenant]:
        query = select(TenantRow).where(TenantRow.deleted_at.is_(None)).order_by(TenantRow.slug)
        if not include_inactive:
            query = query.where(TenantRow.active.is_(True))
        return [tenant_from_row(row) for row in self._session.scalars(query)]

    def active_slugs(self) -> list[str]:
        query = (
            select(TenantRow.slug)
            .where(TenantRow.deleted_at.is_(None), TenantRow.active.is_(True))
            .order_by(TenantRow.slug)
        )
        return list(self._session.scalars(query))

    def update(self, tenant: Tenant) -> Tenant:
        row = self._row(tenant.slug)
        row.name = tenant.name
        row.active = tenant.active
        row.max_concurrent_sessions = tenant.max_concurrent_sessions
        row.monthly_token_budget = tenant.monthly_token_budget
        self._session.flush()
        return tenant

    def delete(self, slug: str) -> None:
        """Soft delete: the tenant disappears from listings and partitions; its data stays."""
        row = self._row(slug)
        row.deleted_at = utcnow()
        row.active = False
        self._session.flush()
