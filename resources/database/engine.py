"""The application database: one engine, and transactions that carry the current tenant.

On PostgreSQL the application logs in as the application role itself (`indorch_app`: no
superuser, no BYPASSRLS, owns nothing, a member of no role; see migrations 0001 and 0007) on the
configured server and database, and every transaction sets `app.tenant_id`, so row-level security
filters even raw SQL, and no statement sent through the engine (`RESET ROLE`, `SET ROLE`, `SET
SESSION AUTHORIZATION`) can become a role that sees more: there is none to go back to. Every new
connection is checked to be such a role before it is used. SQLite has no such wall; there the
repositories' own filter is the only one.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DisconnectionError
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from domain.errors import InvalidSetting
from resources.database.tenant_context import current_tenant_or_none

DEFAULT_APP_ROLE = "indorch_app"
# Connections kept open: as many as the API's requests in flight (uvicorn's thread pool runs
# them), so a steady load opens none; past it, a few more, closed once returned.
POOL_SIZE = 16
POOL_OVERFLOW = 4
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


# How long a writer waits for this process's other writers before going on to SQLite's own busy
# handler anyway (the same 30 s as SQLite's busy timeout).
WRITE_LOCK_TIMEOUT_SECONDS = 30.0
_DML = ("insert", "update", "delete", "replace")  # what makes sqlite3 open a transaction
_write_locks: dict[str, threading.Lock] = {}
_write_locks_guard = threading.Lock()


def _write_lock(database_file: str) -> threading.Lock:
    """The process's one lock for the writers of `database_file` (every engine on it)."""
    key = str(Path(database_file).resolve())
    with _write_locks_guard:
        return _write_locks.setdefault(key, threading.Lock())


class _QueuedWriterConnection(sqlite3.Connection):
    """A sqlite3 connection whose write transaction holds its file's lock of this process from
    its first write (taken by `_take_write_lock`) until its COMMIT or ROLLBACK is done (or the
    connection closed). SQLite lets one writer in at a time; another that tries meanwhile
    sleeps in SQLite's busy handler in growing steps (1, 2, 5 ... 100 ms) however soon the
    first commits, which made the API's tail on SQLite: queued on a lock it is woken at once."""

    write_lock: threading.Lock | None = None
    holds_write_lock = False

    def _give_back(self) -> None:
        if self.holds_write_lock:
            self.holds_write_lock = False
            assert self.write_lock is not None
            self.write_lock.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self._give_back()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._give_back()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._give_back()


def _take_write_lock(_connection: Connection, cursor: Any, statement: str, *_args: Any) -> None:
    """Before the statement that opens a write transaction (sqlite3 sends BEGIN before the
    first INSERT, UPDATE, DELETE or REPLACE outside one), queue for the file's lock."""
    dbapi_connection = cursor.connection
    if (
        not isinstance(dbapi_connection, _QueuedWriterConnection)
        or dbapi_connection.write_lock is None
        or dbapi_connection.holds_write_lock
        or dbapi_connection.in_transaction
        or not statement.lstrip()[:7].lower().startswith(_DML)
    ):
        return
    # Past the timeout (a writer of this thread holding it, say) SQLite's busy handler decides.
    if dbapi_connection.write_lock.acquire(timeout=WRITE_LOCK_TIMEOUT_SECONDS):
        dbapi_connection.holds_write_lock = True


def _configure_sqlite(engine: Engine) -> None:
    database_file = engine.url.database or ""
    if database_file and database_file != ":memory:" and not database_file.startswith("file:"):
        lock = _write_lock(database_file)

        @event.listens_for(engine, "connect")
        def _queue_writers(dbapi_connection: Any, _record: Any) -> None:
            if isinstance(dbapi_connection, _QueuedWriterConnection):
                dbapi_connection.write_lock = lock

        event.listen(engine, "before_cursor_execute", _take_write_lock)

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        # WAL at NORMAL: a commit appends to the WAL without an fsync (checkpoints still sync).
        # An application crash loses nothing; power loss may lose the last commits, never the
        # database's consistency. FULL cost an fsync per API submission.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()


def app_login_url(url: URL, role: str, password: str | None) -> URL:
    """`url` (the migrating user's, say) with the application role as the user: its own
    password when the URL already names the role, else `password` (None: the server's trust,
    peer or .pgpass decides)."""
    if url.username == role:
        return url
    return url.set(username=role, password=password)


# A pooled PostgreSQL connection idle this long is pinged before it is used again (PostgreSQL may
# have restarted, or closed it, meanwhile); one used more recently is not: under load every
# connection is back in use within milliseconds, and a ping before each was one round trip in
# seven of an API submission. A connection the server dropped within the last second fails its
# statement instead, and the pool then replaces every connection opened before the failure.
PING_AFTER_IDLE_SECONDS = 1.0
_RETURNED_AT = "returned at"  # the pool record's info: when the connection was last checked in


def _ping_after_an_idle_spell(engine: Engine) -> None:
    """SQLAlchemy's `pool_pre_ping`, only for connections that sat idle: a dead one is
    `DisconnectionError`, on which the pool opens another in its place."""

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info[_RETURNED_AT] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        returned = record.info.get(_RETURNED_AT)
        if returned is None or time.monotonic() - returned < PING_AFTER_IDLE_SECONDS:
            return  # new, or used moments ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            raise DisconnectionError(f"the pooled connection is gone: {error}") from error


def _refuse_a_role_above_the_wall(engine: Engine, role: str) -> None:
    """A connection whose login could bypass row-level security (a superuser, BYPASSRLS) is
    refused before any query runs on it: misconfigured, the wall would be gone unnoticed."""

    @event.listens_for(engine, "connect")
    def _check(dbapi_connection: Any, _record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute(
                "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = session_user"
            )
            row = cursor.fetchone()
        dbapi_connection.commit()
        if row is None or row[0]:
            dbapi_connection.close()
            raise InvalidSetting(
                "application database role",
                f"{role!r} can bypass row-level security (superuser or BYPASSRLS): the "
                "application must log in as the role the migrations make (indorch_app)",
            )

    @event.listens_for(engine, "do_connect")
    def _connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        try:
            return dialect.loaded_dbapi.connect(*cargs, **cparams)
        except dialect.loaded_dbapi.OperationalError as error:
            if role in str(error):  # the role is missing, may not log in, or its password
                raise InvalidSetting(
                    "application database role",
                    f"cannot log in as {role!r}: run `indorch db upgrade` (it lets the role log "
                    "in) and, if the server asks for a password, set "
                    "INDORCH_APP_DATABASE_PASSWORD",
                ) from None
            raise


_TENANT_SET = "app.tenant_id set"  # session.info: the tenant this transaction was given


def _set_tenant_for_transaction(
    session: Session, transaction: SessionTransaction, connection: Connection
) -> None:
    """`app.tenant_id` for the transaction; a savepoint inside it shares the setting already
    made for the same tenant (one round trip less per savepoint, as every submission takes)."""
    if connection.dialect.name != "postgresql":
        return
    tenant = current_tenant_or_none() or ""
    if transaction.nested and session.info.get(_TENANT_SET) == tenant:
        return
    connection.execute(
        text("SELECT set_config('app.tenant_id', :tenant, true)"), {"tenant": tenant}
    )
    if transaction.nested:  # another tenant's savepoint: what the transaction holds is unsure
        session.info.pop(_TENANT_SET, None)
    else:
        session.info[_TENANT_SET] = tenant


# The rows an API key's authentication reads: a write to any of them may change who a key is.
CREDENTIAL_TABLES = frozenset({"tenants", "users", "api_keys"})


def _credential_tables_touched(session: Session) -> bool:
    return any(
        getattr(row, "__tablename__", None) in CREDENTIAL_TABLES
        for row in (*session.new, *session.dirty, *session.deleted)
    )


class Database:
    """Owns the engine; `transaction()` is the unit of work the repositories run in.

    `credential_generation` moves whenever this process writes a tenant, user or API key row
    (at the flush and again at the commit), so what is remembered about a key
    (`services.authentication`) is dropped at once on a change made here."""

    def __init__(
        self,
        url: str | URL,
        app_role: str | None = DEFAULT_APP_ROLE,
        echo: bool = False,
        app_password: str | None = None,
    ) -> None:
        """`app_role` None: connect as the URL says, with no wall (tools that count across
        tenants); `app_password` None: INDORCH_APP_DATABASE_PASSWORD, if set."""
        self.url = normalized_url(url)
        self.pool_size = POOL_SIZE  # connections kept open (a few more at peaks)
        options: dict[str, Any] = {"echo": echo, "future": True}
        if self.is_sqlite:
            options["connect_args"] = {
                "check_same_thread": False,
                "timeout": 30,
                "factory": _QueuedWriterConnection,
            }
            options.update(pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW)
        else:
            options.update(pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW)
        login = self.url
        if self.is_postgres and app_role:
            if app_password is None:
                from resources.settings import app_database_password

                app_password = app_database_password()
            login = app_login_url(self.url, app_role, app_password)
        self.engine = create_engine(login, **options)
        if self.is_sqlite:
            _configure_sqlite(self.engine)
        else:
            _ping_after_an_idle_spell(self.engine)
            if app_role:
                _refuse_a_role_above_the_wall(self.engine, app_role)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        event.listen(self._sessions, "after_begin", _set_tenant_for_transaction)
        self.credential_generation = 0
        event.listen(self._sessions, "after_flush", self._note_credential_rows)
        event.listen(self._sessions, "do_orm_execute", self._note_credential_statement)
        event.listen(self._sessions, "after_commit", self._credentials_committed)
        event.listen(self._sessions, "after_rollback", self._credentials_committed)

    def _credentials_changed(self, session: Session) -> None:
        session.info["credentials_touched"] = True
        self.credential_generation += 1

    def _note_credential_rows(self, session: Session, _context: Any) -> None:
        if _credential_tables_touched(session):
            self._credentials_changed(session)

    def _note_credential_statement(self, state: Any) -> None:
        if state.is_update or state.is_delete:
            table = getattr(state.statement, "table", None)
            if getattr(table, "name", None) in CREDENTIAL_TABLES:
                self._credentials_changed(state.session)

    def _credentials_committed(self, session: Session) -> None:
        if session.info.pop("credentials_touched", False):
            self.credential_generation += 1

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
