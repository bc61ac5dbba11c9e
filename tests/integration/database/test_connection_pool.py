"""The engine keeps as many connections as the API's requests in flight use, so a steady load
opens none: a connection opened per request (and, on SQLite, its pragmas; on PostgreSQL, its
login and role check) cost more than the request's own queries."""

from __future__ import annotations

import threading
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
