"""The engine keeps as many connections as the API's requests in flight use, so a steady load
opens none: a connection opened per request (and, on SQLite, its pragmas; on PostgreSQL, its
login and role check) cost more than the request's own queries."""

from __future__ import annotations

import threading
import time
from typing import Any

from sqlalchemy import event, text

from resources.database import Database
from resources.database.engine import POOL_SIZE

IN_FLIGHT = 12


def _round(db: Database) -> None:
    barrier = threading.Barrier(IN_FLIGHT)

    def one() -> None:
        with db.transaction() as session:
            session.execute(text("SELECT 1"))
            barrier.wait(timeout=30)  # every connection is checked out at once

    threads = [threading.Thread(target=one) for _ in range(IN_FLIGHT)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)


def test_a_steady_load_reuses_its_connections(database: Database) -> None:
    assert POOL_SIZE >= IN_FLIGHT
    db = Database(database.url.render_as_string(False))
    opened: list[Any] = []
    event.listen(db.engine, "connect", lambda connection, _record: opened.append(connection))
    try:
        _round(db)
        first = len(opened)
        assert first == IN_FLIGHT
        _round(db)
        _round(db)
        assert len(opened) == first  # the second and third rounds opened none
    finally:
        db.dispose()


# --- PostgreSQL: a connection is checked for life only after an idle spell -----------------------


def _backend_pid(db: Database) -> int:
    with db.transaction() as session:
        return int(session.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _counting_pings(db: Database, monkeypatch: Any) -> list[int]:
    pings: list[int] = []
    ping = db.engine.dialect.do_ping

    def counted(dbapi_connection: Any) -> bool:
        pings.append(1)
        return ping(dbapi_connection)

    monkeypatch.setattr(db.engine.dialect, "do_ping", counted)
    return pings


def test_a_connection_used_moments_ago_is_not_pinged(
    migrated_postgres_url: str, monkeypatch: Any
) -> None:
    """A busy server reuses its connections within milliseconds: a ping before each checkout
    was one round trip in seven of every API submission."""
    db = Database(migrated_postgres_url)
    try:
        first = _backend_pid(db)
        pings = _counting_pings(db, monkeypatch)
        for _ in range(5):
            assert _backend_pid(db) == first
        assert pings == []
    finally:
        db.dispose()


def test_a_connection_the_server_dropped_while_idle_is_replaced_unnoticed(
    migrated_postgres_url: str, pg_admin_engine: Any, monkeypatch: Any
) -> None:
    """PostgreSQL restarted, or an idle backend killed: the next checkout after an idle spell
    finds the connection dead and opens another; the caller's transaction never sees it."""
    monkeypatch.setattr("resources.database.engine.PING_AFTER_IDLE_SECONDS", 0.2)
    db = Database(migrated_postgres_url)
    try:
        first = _backend_pid(db)
        with pg_admin_engine.connect() as admin:
            admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
            admin.commit()
        pings = _counting_pings(db, monkeypatch)
        time.sleep(0.3)
        second = _backend_pid(db)  # no error: the dead connection was replaced
        assert second != first
        assert pings == [1]
    finally:
        db.dispose()
