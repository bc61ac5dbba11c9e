"""Users of a tenant, with their roles."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from domain.errors import AlreadyExists, NotFound
from domain.tenant import Role, User
from resources.database.repositories.base import TenantScopedRepository
from resources.database.schema import UserRow


def _to_domain(row: UserRow) -> User:
    return User(
        id=row.id,
        tenant_id=row.tenant_id,
        email=row.email,
        name=row.name,
        role=Role(row.role),
        active=row.active,
        created_at=row.created_at,
    )


class UserRepository(TenantScopedRepository):
    def add(self, user: User) -> User:
        tenant = self._owned(user.tenant_id)
        if self._find_by_email(user.email) is not None:
            raise AlreadyExists("user", user.email)
        self._session.add(
            UserRow(
                id=user.id,
                tenant_id=tenant,
                email=user.email,
                name=user.name,
                role=user.role.value,
                active=user.active,
                created_at=user.created_at,
            )
        )
        try:
            self._session.flush()
        except IntegrityError as error:
            raise AlreadyExists("user", user.email) from error
        return user

    def _find_by_email(self, email: str) -> UserRow | None:
        query = select(UserRow).where(
            UserRow.tenant_id == self.tenant_id, UserRow.email == email.strip().lower()
        )
        return self._session.scalars(query).first()

    def get(self, user_id: str) -> User:
        row = self._session.scalars(
            select(UserRow).where(UserRow.tenant_id == self.tenant_id, UserRow.id == user_id)
        ).first()
        if row is None:
            raise NotFound("user", user_id)
        return _to_domain(row)

    def get_by_email(self, email: str) -> User:
        row = self._find_by_email(email)
        if row is None:
            raise NotFound("user", email)
        return _to_domain(row)

    def list(self) -> list[User]:
        query = select(UserRow).where(UserRow.tenant_id == self.tenant_id).order_by(UserRow.email)
        return [_to_domain(row) for row in self._session.scalars(query)]

    def save(self, user: User) -> User:
        """Persist the user's role, name and whether it is active (suspended when not)."""
        row = self._session.scalars(
            select(UserRow).where(UserRow.tenant_id == self.tenant_id, UserRow.id == user.id)
        ).first()
        if row is None:
            raise NotFound("user", user.id)
        row.role = user.role.value
        row.name = user.name
        row.active = user.active
        self._session.flush()
        return user
