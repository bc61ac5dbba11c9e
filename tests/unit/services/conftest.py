"""The services' unit tests share the supervision tests' migrated SQLite database per test."""

from tests.unit.supervision.conftest import database, migrated_sqlite  # noqa: F401
