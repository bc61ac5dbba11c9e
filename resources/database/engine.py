"""The application database: one engine, and transactions that carry the current tenant.

On PostgreSQL every connection acts as the application role (no BYPASSRLS; see migration 0001)
and every transaction sets `app.tenant_id`, so row-level security filters even raw SQL. SQLite
has no such wall; there the repositories' own filter is the only one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from domain.errors import InvalidSetting
from resources.database.tenant_context import current_tenant_or_none

DEFAULT_APP_ROLE = "indorch_app"
POSTGRES_BACKENDS = frozenset({"postgresql", "postgres"})
SUPPORTED_URLS = "use postgresql://user:password@host:port/database or sqlite:///path/to/file.db"


def normalized_url(url: str | URL, setting: str = "database URL") -> URL:
    """PostgreSQL URLs (`postgres://` too, a common spelling) use the psycopg 3 driver whatever
    the user wrote; anything but PostgreSQL or SQLite is `InvalidSetting` naming `setting`."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # not a URL, or a port that is not a number
        raise InvalidSetting(setting, f"not a database URL ({SUPPORTED_URLS})") from None
    backend = parsed.get_backend_name()
    if backend in POSTGRES_BACKENDS and (
        backend != "postgresql" or parsed.get_driver_name() != "psycopg"
    ):
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif backend not in POSTGRES_BACKENDS | {"sqlite"}:
        raise InvalidSetting(setting, f"unsupported database {backend!r} ({SUPPORTED_URLS})")
    return parsed


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()


def _configure_postgres_role(engine: Engine, role: str) -> None:
    @event.listens_for(engine, "connect")
    def _set_role(dbapi_connection: Any, _record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f'SET ROLE "{role}"')
        dbapi_connection.commit()


def _set_tenant_for_transaction(
    session: Session, _transaction: SessionTransaction, connection: Connection
) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(
            text("SELECT set_config('app.tenant_id', :tenant, true)"),
            {"tenant": current_tenant_or_none() or ""},
        )


class Database:
    """Owns the engine; `transaction()` is the unit of work the repositories run in."""

    def __init__(
        self, url: str | URL, app_role: str | None = DEFAULT_APP_ROLE, echo: bool = False
    ) -> None:
        self.url = normalized_url(url)
        options: dict[str, Any] = {"echo": echo, "future": True}
        if self.is_sqlite:
            options["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            options.update(pool_pre_ping=True, pool_size=5, max_overflow=10)
        self.engine = create_engine(self.url, **options)
        if self.is_sqlite:
            _configure_sqlite(self.engine)
        elif app_role:
            _configure_postgres_role(self.engine, app_role)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        event.listen(self._sessions, "after_begin", _set_tenant_for_transaction)

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_backend_name() == "sqlite"

    @property
    def is_postgres(self) -> bool:
        return self.url.get_backend_name() == "postgresql"

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """Commit when the block ends, roll back on any error (nothing half-written)."""
        with self._sessions.begin() as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
