"""What every command needs: the configured database, checked to be at the current schema."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from domain.errors import DomainError
from resources.database import Database, UnitOfWork, tenant_scope, unit_of_work
from resources.database.migrate import current_revision, head_revision
from resources.settings import database_url


class SchemaNotCurrent(DomainError):
    """The database was never migrated, or is behind the code."""

    def __init__(self, current: str | None, head: str | None) -> None:
        super().__init__(
            f"the database schema is at {current or 'nothing'}, the code needs {head}: "
            "run `indorch db upgrade`"
        )


def open_database() -> Database:
    database = Database(database_url())
    current, head = current_revision(database.engine), head_revision()
    if current != head:
        database.dispose()
        raise SchemaNotCurrent(current, head)
    return database


@contextmanager
def platform_work() -> Iterator[UnitOfWork]:
    """A transaction with no tenant: only the tenant registry is usable."""
    database = open_database()
    try:
        with unit_of_work(database) as uow:
            yield uow
    finally:
        database.dispose()


@contextmanager
def tenant_work(slug: str) -> Iterator[UnitOfWork]:
    """A transaction scoped to an existing tenant (unknown tenant -> NotFound)."""
    database = open_database()
    try:
        with unit_of_work(database) as uow:
            uow.tenants.get(slug)
        with tenant_scope(slug), unit_of_work(database) as uow:
            yield uow
    finally:
        database.dispose()
