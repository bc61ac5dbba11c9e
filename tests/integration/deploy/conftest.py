"""The deploy tests use the persistence tests' migrated application database, and (the
multi-process sessions test) the OpenCode tests' binary and scripted model."""

from tests.integration.database.conftest import migrated_postgres_url  # noqa: F401
from tests.integration.opencode.conftest import (  # noqa: F401  (fixtures, used by name)
    opencode_binary,
    scripted_model,
    scripted_model_url,
)
