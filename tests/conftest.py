"""Shared fixtures for the real services the integration tests need (PostgreSQL and Redis).

Where the services come from:
- ``TEST_DATABASE_URL`` (e.g. ``postgresql+psycopg://postgres@127.0.0.1:5432/indorch_ci_...``)
- ``TEST_REDIS_URL`` (e.g. ``redis://127.0.0.1:6379/15``)

``scripts/test.sh`` (``make test``) sets both. When a service is missing or does not answer, the
tests that need it skip and say why, unless services are required (``INDORCH_REQUIRE_SERVICES=1``
or ``CI=true``): then they fail. As a second guard, under that requirement any service test that
ends up skipped anyway (say a ``pytest.skip`` inside the test) is reported as a failure, so CI can
never pass with its service tests silently skipped.

Tests under ``tests/integration`` that use ``postgres_url``/``fresh_postgres_url``/
``migrated_postgres_copy`` are marked ``postgres``, those that use ``redis_url`` are marked
``redis`` (``-m "not postgres"`` etc.).
OpenCode: tests that use ``opencode_binary`` (every fixture of ``tests/integration/opencode``
depends on it) are marked ``opencode`` and follow the same skip/fail rule; their fixtures live in
``tests/integration/opencode/conftest.py``.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url

TESTS_DIR = Path(__file__).parent
INTEGRATION_DIR = TESTS_DIR / "integration"
# Tests that take the whole machine, one at a time under pytest-xdist (xdist_group_of).
WHOLE_MACHINE_TESTS = (
    INTEGRATION_DIR / "runtime",  # managed runtimes: the host's OS users, firewall rules, cgroups
    INTEGRATION_DIR / "deploy" / "test_production_sessions.py",  # managed runtimes too
    TESTS_DIR / "e2e" / "test_demo.py",  # managed runtimes, and both cores for minutes
    TESTS_DIR / "chaos",  # both cores for minutes (production leases and monitoring)
)
POSTGRES_FIXTURES = frozenset({"postgres_url", "fresh_postgres_url", "migrated_postgres_copy"})
REDIS_FIXTURES = frozenset({"redis_url"})
OPENCODE_FIXTURES = frozenset({"opencode_binary"})  # see tests/integration/opencode/conftest.py
SERVICE_MARKERS = ("postgres", "redis", "opencode")
CONNECT_TIMEOUT_SECONDS = 5
MAX_IDENTIFIER_LENGTH = 63  # PostgreSQL's limit for a database name
REDIS_DATABASES = 16  # a Redis server's logical databases (its default `databases`)


def services_required() -> bool:
    """True when a missing service must fail the run instead of skipping its tests."""
    return (
        os.environ.get("INDORCH_REQUIRE_SERVICES") == "1"
        or os.environ.get("CI", "").lower() == "true"
    )


def _unavailable(reason: str) -> None:
    if services_required():
        pytest.fail(
            f"{reason} (services are required: INDORCH_REQUIRE_SERVICES=1 or CI=true)",
            pytrace=False,
        )
    pytest.skip(reason)


def _safe_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable URL>"


# --- PostgreSQL -------------------------------------------------------------------------------


def xdist_worker() -> str | None:
    """This process's name among pytest-xdist's workers (``gw0``, ``gw1``...), None when alone."""
    return os.environ.get("PYTEST_XDIST_WORKER")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of the test database on the real PostgreSQL server (checked with ``SELECT 1``); under
    pytest-xdist, a database of this worker's own beside it (created empty, dropped at the end):
    the tests that share the run's database assume no other test writes it meanwhile."""
    url = _reachable_postgres_url()
    worker = xdist_worker()
    if worker is None:
        yield url
        return
    with created_database(url, f"{make_url(url).database}_{worker}") as own:
        yield own


def _reachable_postgres_url() -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        _unavailable(
            "PostgreSQL not available: set TEST_DATABASE_URL "
            "(e.g. postgresql+psycopg://postgres@127.0.0.1:5432/<db>) or run `make test`"
        )
    try:
        engine = create_engine(url, connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS})
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        finally:
            engine.dispose()
    except Exception as error:
        _unavailable(
            f"PostgreSQL not available: set TEST_DATABASE_URL to a reachable server; "
            f"{_safe_url(url)} failed: {type(error).__name__}: {error}"
        )
    return url


def _database_name_for(node_name: str) -> str:
    """A unique, lowercase PostgreSQL database name (<= 63 chars) derived from the test name."""
    suffix = uuid.uuid4().hex[:8]
    prefix = "indorch_t_"
    slug = re.sub(r"[^a-z0-9]+", "_", node_name.lower()).strip("_") or "test"
    room = MAX_IDENTIFIER_LENGTH - len(prefix) - len(suffix) - 1
    return f"{prefix}{slug[:room].rstrip('_')}_{suffix}"


class DatabaseDropper:
    """Drops the tests' own databases on a thread of its own: a DROP DATABASE waits for a
    checkpoint (1-4 s on this machine), which the next test need not wait for. Every database
    handed to it is dropped before the run ends (`close`)."""

    def __init__(self, server_url: URL) -> None:
        self._admin = create_engine(
            server_url.set(database="postgres"),
            isolation_level="AUTOCOMMIT",
            connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS},
        )
        self._names: queue.Queue[str | None] = queue.Queue()
        self._failures: list[str] = []
        self._thread = threading.Thread(
            target=self._drop_each, name="database-dropper", daemon=True
        )
        self._thread.start()

    def drop(self, name: str) -> None:
        self._names.put(name)

    def close(self) -> list[str]:
        """Waits for every drop asked for; returns those that failed, saying why."""
        self._names.put(None)
        self._thread.join()
        self._admin.dispose()
        return self._failures

    def _drop_each(self) -> None:
        while (name := self._names.get()) is not None:
            try:
                with self._admin.connect() as connection:
                    connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            except Exception as error:
                self._failures.append(f"{name}: {type(error).__name__}: {error}")


@pytest.fixture(scope="session")
def database_dropper(postgres_url: str) -> Iterator[DatabaseDropper]:
    dropper = DatabaseDropper(make_url(postgres_url))
    try:
        yield dropper
    finally:
        failures = dropper.close()
        assert not failures, f"test databases left on the server: {failures}"


@pytest.fixture
def fresh_postgres_url(
    postgres_url: str, database_dropper: DatabaseDropper, request: pytest.FixtureRequest
) -> Iterator[str]:
    """A brand-new empty database on the same server, dropped after the test."""
    with created_database(postgres_url, request.node.name, database_dropper) as url:
        yield url


@pytest.fixture(scope="session")
def migrated_postgres_template(
    postgres_url: str, database_dropper: DatabaseDropper
) -> Iterator[str]:
    """The name of a database on the test server that the real migrations brought to head, once
    per run: a test's own migrated database is a copy of it (`CREATE DATABASE ... TEMPLATE`,
    ~0.1 s, where migrating a new one took 1-1.7 s; the migrations have tests of their own)."""
    from resources.database.migrate import upgrade

    with created_database(postgres_url, "migrated_template", database_dropper) as url:
        upgrade(url)  # its engine is disposed: a template must have no connection when copied
        yield make_url(url).database


@pytest.fixture
def migrated_postgres_copy(
    postgres_url: str,
    migrated_postgres_template: str,
    database_dropper: DatabaseDropper,
    request: pytest.FixtureRequest,
) -> Iterator[str]:
    """A brand-new database at the current schema (a copy of the run's migrated template),
    this test's alone, dropped after it."""
    with created_database(
        postgres_url, request.node.name, database_dropper, template=migrated_postgres_template
    ) as url:
        yield url


@contextmanager
def created_database(
    postgres_url: str,
    node_name: str,
    dropper: DatabaseDropper | None = None,
    template: str | None = None,
) -> Iterator[str]:
    """A new database named after `node_name` on `postgres_url`'s server, dropped on exit (for
    a test that needs more than one, e.g. two regions); by `dropper` if given. Empty, or a copy
    of the database `template` (`migrated_postgres_template`: at the current schema)."""
    server_url = make_url(postgres_url)
    name = _database_name_for(node_name)
    admin = create_engine(
        server_url.set(database="postgres"),
        isolation_level="AUTOCOMMIT",
        connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS},
    )
    copy = f' TEMPLATE "{template}"' if template else ""
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"{copy}'))
        try:
            yield server_url.set(database=name).render_as_string(hide_password=False)
        finally:
            if dropper is not None:
                dropper.drop(name)
            else:
                with admin.connect() as connection:
                    connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """URL of a SQLite database file in the test's temporary directory."""
    return f"sqlite:///{tmp_path / 'indorch.db'}"


@pytest.fixture(scope="session")
def migrated_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file the real migrations brought to head, once per run: migrating a file per
    test took over half a second each (the migrations have tests of their own)."""
    from resources.database.migrate import upgrade

    path = tmp_path_factory.mktemp("sqlite_template") / "migrated.db"
    upgrade(f"sqlite:///{path}")
    leftovers = [p.name for p in path.parent.glob(path.name + "-*")]
    assert not leftovers, f"{path.name} still has {leftovers}: a copy would miss their pages"
    return path


@pytest.fixture
def migrated_sqlite_url(migrated_sqlite_template: Path, sqlite_url: str) -> str:
    """This test's own SQLite database at the current schema (a copy of the run's template)."""
    shutil.copyfile(migrated_sqlite_template, sqlite_url.removeprefix("sqlite:///"))
    return sqlite_url


def migrated_url(request: pytest.FixtureRequest) -> str:
    """For a fixture parametrized by backend ("sqlite", or "postgres"/"postgresql"): the test's
    own migrated SQLite copy, or the run's PostgreSQL database brought to head (a no-op after
    its first test)."""
    if request.param == "sqlite":
        return request.getfixturevalue("migrated_sqlite_url")
    from resources.database.migrate import upgrade

    url = request.getfixturevalue("postgres_url")
    upgrade(url)
    return url


# --- Redis ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of the real Redis server for tests (checked with ``PING``); under pytest-xdist, the
    worker's own logical database below the one named (``gw0`` the one named, ``gw1`` the one
    below...), so that no worker's keys meet another's."""
    url = _worker_redis_url(os.environ.get("TEST_REDIS_URL"))
    if not url:
        _unavailable(
            "Redis not available: set TEST_REDIS_URL (e.g. redis://127.0.0.1:6379/15) "
            "or run `make test`"
        )
    try:
        client = redis.Redis.from_url(
            url,
            socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
            socket_timeout=CONNECT_TIMEOUT_SECONDS,
        )
        try:
            client.ping()
        finally:
            client.close()
    except Exception as error:
        _unavailable(
            f"Redis not available: set TEST_REDIS_URL to a reachable server; "
            f"{_safe_url(url)} failed: {type(error).__name__}: {error}"
        )
    return url


def _worker_redis_url(url: str | None) -> str | None:
    worker = xdist_worker()
    if not url or worker is None:
        return url
    parsed = urlsplit(url)
    base = int(parsed.path.strip("/") or 0)
    database = (base - int(worker.removeprefix("gw"))) % REDIS_DATABASES
    return urlunsplit(parsed._replace(path=f"/{database}"))


# --- hooks ------------------------------------------------------------------------------------


def pytest_report_header(config: pytest.Config) -> list[str]:
    database = os.environ.get("TEST_DATABASE_URL")
    redis_server = os.environ.get("TEST_REDIS_URL")
    return [
        "services: "
        f"postgres={_safe_url(database) if database else 'unset'} "
        f"redis={_safe_url(redis_server) if redis_server else 'unset'} "
        f"required={services_required()}"
    ]


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("INDORCH_TEST_CPU_REPORT"):
        from tests import cpu_report

        config.pluginmanager.register(cpu_report, "cpu_report")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.xdist_group(xdist_group_of(Path(item.path))))
        if not Path(item.path).is_relative_to(INTEGRATION_DIR):
            continue
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & POSTGRES_FIXTURES:
            item.add_marker(pytest.mark.postgres)
        if fixtures & REDIS_FIXTURES:
            item.add_marker(pytest.mark.redis)
        if fixtures & OPENCODE_FIXTURES:
            item.add_marker(pytest.mark.opencode)


def xdist_group_of(path: Path) -> str:
    """The pytest-xdist group a test file's tests run in (`--dist loadgroup`, scripts/test.sh):
    its module (its module-scoped servers started once), or one group for the tests that take the
    whole machine: a managed runtime's start rebuilds the host's firewall rules and makes the
    tenant's OS user, which two workers must not do at once; and the demo and the chaos suite
    each fill both cores, so neither must share its minutes with the other."""
    if any(path.is_relative_to(shared) for shared in WHOLE_MACHINE_TESTS):
        return "whole-machine"
    return str(path.relative_to(TESTS_DIR))


def _is_service_test(item: pytest.Item) -> bool:
    fixtures = set(getattr(item, "fixturenames", ()))
    return bool(
        any(item.get_closest_marker(marker) for marker in SERVICE_MARKERS)
        or fixtures & (POSTGRES_FIXTURES | REDIS_FIXTURES | OPENCODE_FIXTURES)
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    outcome = yield
    report = outcome.get_result()
    if (
        report.skipped
        and not hasattr(report, "wasxfail")
        and services_required()
        and _is_service_test(item)
    ):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = (
            f"service test skipped while services are required "
            f"(INDORCH_REQUIRE_SERVICES=1 or CI=true): {reason}"
        )
