"""What every command needs: the configured database, checked to be at the current schema.

The database stack (SQLAlchemy, Alembic, the repositories) is imported when a command opens the
database, not when `indorch` starts (see `indorch.main`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from resources.database import Database, UnitOfWork


def open_database() -> Database:
    from resources.database import Database
    from resources.database.schema_version import ensure_current
    from resources.settings import database_url

    database = Database(database_url())
    try:
        ensure_current(database.engine)
    except Exception:
        database.dispose()
        raise
    return database


@contextmanager
def platform_work() -> Iterator[UnitOfWork]:
    """A transaction with no tenant: only the tenant registry is usable."""
    from resources.database import unit_of_work

    database = open_database()
    try:
        with unit_of_work(database) as uow:
            yield uow
    finally:
        database.dispose()


@contextmanager
def tenant_work(slug: str) -> Iterator[UnitOfWork]:
    """A transaction scoped to an existing tenant (unknown tenant -> NotFound)."""
    from resources.database import tenant_scope, unit_of_work

    database = open_database()
    try:
        with unit_of_work(database) as uow:
            uow.tenants.get(slug)
        with tenant_scope(slug), unit_of_work(database) as uow:
            yield uow
    finally:
        database.dispose()


@contextmanager
def tenant_database(slug: str) -> Iterator[Database]:
    """The database, once the tenant is known to exist (unknown tenant -> NotFound); for the
    services, which open their own tenant-scoped transactions."""
    from resources.database import unit_of_work

    database = open_database()
    try:
        with unit_of_work(database) as uow:
            uow.tenants.get(slug)
        yield database
    finally:
        database.dispose()
