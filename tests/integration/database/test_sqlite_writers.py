"""SQLite's writers in one process queue on a lock of the process (taken at a transaction's
first write, given back after its COMMIT or ROLLBACK), not in SQLite's busy handler, which
sleeps 1, 2, 5 ... 100 ms between tries and made the API's SQLite tail (p99 over 500 ms at 16
connections). Readers never wait for it; a writer in another process still meets SQLite's own
busy timeout."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import IntegrityError

from resources.database import Database

THREADS = 8
EACH = 25


@pytest.fixture
def db(tmp_path: Path) -> Any:
    database = Database(f"sqlite:///{tmp_path / 'writers.db'}")
    with database.transaction() as session:
        session.execute(text("CREATE TABLE writer_rows (id INTEGER PRIMARY KEY, thread INTEGER)"))
    yield database
    database.dispose()


def _no_busy_wait(database: Database) -> None:
    """SQLite answers `database is locked` at once instead of sleeping: any collision of two
    writers of this process inside SQLite would fail the transaction."""

    @event.listens_for(database.engine, "connect")
    def _busy_timeout_zero(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA busy_timeout=0")


def test_concurrent_writers_of_one_process_never_collide_inside_sqlite(db: Database) -> None:
    db.engine.dispose()  # connections made from here on answer `locked` at once
    _no_busy_wait(db)
    failures: list[BaseException] = []

    def write(thread: int) -> None:
        for _ in range(EACH):
            try:
                with db.transaction() as session:
                    session.execute(text("SELECT count(*) FROM writer_rows")).scalar()
                    session.execute(
                        text("INSERT INTO writer_rows (thread) VALUES (:t)"), {"t": thread}
                    )
                    session.execute(
                        text("UPDATE writer_rows SET thread = thread WHERE thread = :t"),
                        {"t": thread},
                    )
            except Exception as error:  # counted and shown below
                failures.append(error)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    with db.transaction() as session:
        assert session.execute(text("SELECT count(*) FROM writer_rows")).scalar() == THREADS * EACH


def test_a_reader_does_not_wait_for_a_writer_in_its_transaction(db: Database) -> None:
    with db.transaction() as writer:
        writer.execute(text("INSERT INTO writer_rows (thread) VALUES (1)"))
        seen: list[int] = []
        reader = threading.Thread(
            target=lambda: seen.append(_count(db)),
        )
        reader.start()
        reader.join(timeout=5)
        assert seen == [0]  # answered while the write is open, without its row


def test_a_rolled_back_or_failed_write_gives_the_lock_back(db: Database) -> None:
    with pytest.raises(IntegrityError), db.transaction() as session:
        session.execute(text("INSERT INTO writer_rows (id, thread) VALUES (1, 1)"))
        session.execute(text("INSERT INTO writer_rows (id, thread) VALUES (1, 2)"))
    done = threading.Event()

    def write() -> None:
        with db.transaction() as session:
            session.execute(text("INSERT INTO writer_rows (thread) VALUES (3)"))
        done.set()

    threading.Thread(target=write).start()
    assert done.wait(timeout=5)  # another thread's write was not held up
    assert _count(db) == 1


def _count(db: Database) -> int:
    with db.transaction() as session:
        return int(session.execute(text("SELECT count(*) FROM writer_rows")).scalar() or 0)
