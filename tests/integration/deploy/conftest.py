"""The deploy tests use the persistence tests' migrated application database."""

from tests.integration.database.conftest import migrated_postgres_url  # noqa: F401
