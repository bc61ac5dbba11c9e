"""The application database as a Dagster resource: one engine per execution, closed afterwards.

Sensors, assets and ops ask for ``database: DatabaseResource`` and work through
``unit_of_work()``; nothing else in the code location builds engines or reads ``DATABASE_URL``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
from pydantic import Field, PrivateAttr

from resources import settings
from resources.database import Database, UnitOfWork, unit_of_work
from resources.database.engine import DEFAULT_APP_ROLE
from resources.database.schema_version import ensure_current


class DatabaseResource(dg.ConfigurableResource):
    """PostgreSQL (production) or SQLite (embedded default), reached through `Database`."""

    url: str = Field(description="SQLAlchemy URL of the application database.")
    app_role: str | None = Field(
        default=DEFAULT_APP_ROLE,
        description="PostgreSQL role every connection switches to (row-level security applies).",
    )

    _database: Database | None = PrivateAttr(default=None)

    def get_database(self) -> Database:
        """The engine owner, built on first use and kept until `dispose()`.

        Raises `SchemaNotCurrent` when the schema is not the code's, rather than letting a
        query fail later on a missing table.
        """
        if self._database is None:
            database = Database(self.url, app_role=self.app_role)
            try:
                ensure_current(database.engine)
            except Exception:
                database.dispose()
                raise
            self._database = database
        return self._database

    @contextmanager
    def unit_of_work(self) -> Iterator[UnitOfWork]:
        """One transaction with every repository: commits at the end, rolls back on error."""
        with unit_of_work(self.get_database()) as uow:
            yield uow

    def dispose(self) -> None:
        """Close the engine's connections; the next `get_database()` builds a fresh one."""
        if self._database is not None:
            self._database.dispose()
            self._database = None

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        # Dagster builds a copy of the resource per run or sensor tick and tears it down after,
        # so a tick never leaves pooled connections behind (PostgreSQL counts them).
        self.dispose()


def configured_database_resource() -> DatabaseResource:
    """The resource as the code location binds it.

    With ``DATABASE_URL`` set (production) the URL is an `EnvVar`: Dagster resolves it in the
    process that runs, and neither stores it in the code location's snapshot nor shows it in the
    UI, which matters because the URL may carry a password. Without it, the embedded default is
    a SQLite file in the state directory: no secret, so a plain value is enough (and `EnvVar`
    would fail on the unset variable).
    """
    if settings.database_url_is_configured():
        return DatabaseResource(url=dg.EnvVar(settings.DATABASE_URL_VAR))
    return DatabaseResource(url=settings.database_url())
