"""SQLite runs in WAL at synchronous=NORMAL: a commit is one WAL append, not an fsync of it.

An application crash loses no committed transaction either way; an OS crash or power loss may
lose the last commits before it (the database stays consistent). The README says so.
"""

from __future__ import annotations

from sqlalchemy import text

from resources.database import Database

WAL = "wal"
SYNCHRONOUS_NORMAL = 1  # PRAGMA synchronous: 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA


def test_every_sqlite_connection_is_in_wal_at_synchronous_normal(migrated_sqlite_url: str) -> None:
    db = Database(migrated_sqlite_url)
    try:
        with db.engine.connect() as connection:
            assert connection.execute(text("PRAGMA journal_mode")).scalar() == WAL
            assert connection.execute(text("PRAGMA synchronous")).scalar() == SYNCHRONOUS_NORMAL
            assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
    finally:
        db.dispose()
