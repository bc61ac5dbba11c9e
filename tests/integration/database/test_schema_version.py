"""The schema check loads neither Alembic nor (without Redis) redis-py.

Every wave run, sensor tick and CLI command checks that the database is at the code's migration
head before it works. Alembic and its templating stack cost ~9 MB and ~0.1 CPU-s to import; the
check needs none of it to read one version row. (In a run, Dagster's own SQL storage still
imports Alembic; the project's code does not add it.) The check's answers are compared with
Alembic's here and in `test_migrations.py`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine

from resources.database.migrate import upgrade
from resources.database.schema_version import current_revision, head_revision

PROJECT_ROOT = Path(__file__).resolve().parents[3]

CHECK_AS_A_RUN_DOES = """
import json, sys
from orchestrator_defs.definitions import defs
defs()
from resources.database_resource import DatabaseResource
DatabaseResource(url=sys.argv[1]).get_database()
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def test_the_code_location_checks_the_schema_without_alembic_or_redis(sqlite_url: str) -> None:
    upgrade(sqlite_url)
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    finished = subprocess.run(
        [sys.executable, "-c", CHECK_AS_A_RUN_DOES, sqlite_url],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert finished.returncode == 0, finished.stderr
    loaded = set(json.loads(finished.stdout.splitlines()[-1]))
    assert {"sqlalchemy", "dagster"} <= loaded  # it did load the code location and check
    assert loaded.isdisjoint({"alembic", "mako", "redis"})


def test_the_version_read_is_alembics(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    try:
        assert current_revision(engine) is None
        upgrade(sqlite_url)
        with engine.connect() as connection:
            alembic_answer = MigrationContext.configure(connection).get_current_revision()
        assert current_revision(engine) == alembic_answer == head_revision()
    finally:
        engine.dispose()
