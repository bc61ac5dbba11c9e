"""The stand-in provider's SQLite file: uploaded files, jobs, their events and the tuned models.

One connection per operation under one lock: the server handles requests on several threads,
and SQLite serializes writers anyway. Every row carries its `owner` (a hash of the API key that
created it); every read filters by it, so one key never sees another's files, jobs or models.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

DATABASE_FILE = "finetune_provider.sqlite"
SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL, owner TEXT NOT NULL, filename TEXT NOT NULL,
    purpose TEXT NOT NULL, bytes INTEGER NOT NULL, created_at REAL NOT NULL,
    content BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL, owner TEXT NOT NULL, organization_id TEXT NOT NULL,
    model TEXT NOT NULL, training_file TEXT NOT NULL, suffix TEXT, seed INTEGER NOT NULL,
    n_epochs INTEGER NOT NULL, batch_size INTEGER NOT NULL,
    learning_rate_multiplier REAL NOT NULL,
    status TEXT NOT NULL, created_at REAL NOT NULL, phase_at REAL NOT NULL,
    trained_at REAL, finished_at REAL, fine_tuned_model TEXT, trained_tokens INTEGER,
    error_code TEXT, error_message TEXT, error_param TEXT
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL, job_id TEXT NOT NULL, owner TEXT NOT NULL,
    created_at REAL NOT NULL, level TEXT NOT NULL, message TEXT NOT NULL,
    type TEXT NOT NULL, data TEXT
);
CREATE TABLE IF NOT EXISTS inference_keys (
    key_hash TEXT PRIMARY KEY, owner TEXT NOT NULL, suffix TEXT NOT NULL, created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS models (
    name TEXT PRIMARY KEY, owner TEXT NOT NULL, base TEXT NOT NULL,
    job_id TEXT NOT NULL, training_file TEXT NOT NULL, created_at REAL NOT NULL
);
"""


class Store:
    """Rows in and out; no rules (those are in :mod:`standins.finetune_provider.provider`)."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / DATABASE_FILE
        self._lock = threading.Lock()
        with self.connection() as connection:
            connection.executescript(SCHEMA)

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        """One transaction under the lock: committed at the end, rolled back on error."""
        with self._lock:
            connection = sqlite3.connect(self.path)
            connection.row_factory = sqlite3.Row
            try:
                with connection:
                    yield connection
            finally:
                connection.close()

    # --- files -------------------------------------------------------------------------------

    def add_file(self, row: dict[str, Any]) -> None:
        with self.connection() as connection:
            _insert(connection, "files", row)

    def file(self, owner: str, file_id: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM files WHERE owner = ? AND id = ?", owner, file_id)

    def files(self, owner: str) -> list[dict[str, Any]]:
        with self.connection() as connection:
            rows = connection.execute(
                "SELECT * FROM files WHERE owner = ? ORDER BY seq DESC", (owner,)
            )
            return [dict(row) for row in rows]

    # --- jobs --------------------------------------------------------------------------------

    def add_job(self, row: dict[str, Any], event: dict[str, Any]) -> None:
        with self.connection() as connection:
            _insert(connection, "jobs", row)
            _insert(connection, "events", event)

    def job(self, owner: str, job_id: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM jobs WHERE owner = ? AND id = ?", owner, job_id)

    def jobs(self, owner: str) -> list[dict[str, Any]]:
        with self.connection() as connection:
            rows = connection.execute(
                "SELECT * FROM jobs WHERE owner = ? ORDER BY seq DESC", (owner,)
            )
            return [dict(row) for row in rows]

    def update_job(
        self,
        job_id: str,
        changes: dict[str, Any],
        events: list[dict[str, Any]],
        model: dict[str, Any] | None = None,
        drop_events_after: float | None = None,
    ) -> None:
        """One job's move: its new columns, its new events, its model; with
        ``drop_events_after`` the scheduled events later than that time go (a cancel)."""
        with self.connection() as connection:
            assignments = ", ".join(f"{column} = ?" for column in changes)
            connection.execute(
                f"UPDATE jobs SET {assignments} WHERE id = ?", (*changes.values(), job_id)
            )
            if drop_events_after is not None:
                connection.execute(
                    "DELETE FROM events WHERE job_id = ? AND created_at > ?",
                    (job_id, drop_events_after),
                )
            for event in events:
                _insert(connection, "events", event)
            if model is not None:
                _insert(connection, "models", model)

    def events(self, owner: str, job_id: str, until: float) -> list[dict[str, Any]]:
        """The job's events up to `until`, newest first (later ones are still scheduled)."""
        with self.connection() as connection:
            rows = connection.execute(
                "SELECT * FROM events WHERE owner = ? AND job_id = ? AND created_at <= ? "
                "ORDER BY created_at DESC, seq DESC",
                (owner, job_id, until),
            )
            return [{**dict(row), "data": json.loads(row["data"] or "null")} for row in rows]

    # --- models ------------------------------------------------------------------------------

    def model(self, owner: str, name: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM models WHERE owner = ? AND name = ?", owner, name)

    def models(self, owner: str) -> list[dict[str, Any]]:
        with self.connection() as connection:
            rows = connection.execute(
                "SELECT * FROM models WHERE owner = ? ORDER BY created_at", (owner,)
            )
            return [dict(row) for row in rows]

    # --- inference keys (restricted: chat with one suffix's models only) ---------------------

    def add_inference_key(self, row: dict[str, Any]) -> None:
        with self.connection() as connection:
            _insert(connection, "inference_keys", row)

    def inference_key(self, key_hash: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM inference_keys WHERE key_hash = ?", key_hash)

    def _one(self, query: str, *parameters: Any) -> dict[str, Any] | None:
        with self.connection() as connection:
            row = connection.execute(query, parameters).fetchone()
            return dict(row) if row is not None else None


def _insert(connection: sqlite3.Connection, table: str, row: dict[str, Any]) -> None:
    values = {
        key: json.dumps(value) if isinstance(value, dict | list) else value
        for key, value in row.items()
    }
    columns = ", ".join(values)
    marks = ", ".join("?" for _ in values)
    connection.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})", tuple(values.values()))
