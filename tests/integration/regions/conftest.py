"""Two regions on this machine: each its own PostgreSQL database and its own redis-server, and a
link (`standins.link_proxy.LinkProxy`, one per service of region B) that a test can cut.

- ``region_a`` / ``region_b``: a migrated database, a private redis-server on a free port, the
  services wired to publish there (as a wave publishes), and region B's API served over HTTP;
- ``link``: the proxies through which the replicator reaches region B (its database and Redis);
- ``replicator``: A's history shipped to B through the link, by a `RegionReplicator` running
  in a thread (stopped after the test).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from api.app import create_app
from api.services import Services
from resources.database import Database
from resources.redis.link import ProbeBackoff
from resources.redis.live_events import RedisEventPublisher
from services.factory import ServiceFactory
from services.region_replication import RegionReplicator
from standins.link_proxy import LinkProxy, free_port
from tests.conftest import DatabaseDropper, created_database
from tests.integration.api.support import served
from tests.integration.redis.conftest import RedisServerProcess, redis_server_binary

QUICK_PROBES = ProbeBackoff(first=0.05, longest=0.5)  # a restored link is noticed at once
PASS_INTERVAL_SECONDS = 0.05


@dataclass
class Region:
    name: str
    database_url: str
    database: Database
    redis: RedisServerProcess
    publisher: RedisEventPublisher
    factory: ServiceFactory
    api_url: str | None = None


@dataclass(frozen=True)
class RegionDatabases:
    """Where a region's database comes from: a copy of the run's migrated template on the test
    server, dropped by the run's dropper after the test."""

    server_url: str
    template: str
    dropper: DatabaseDropper


@pytest.fixture
def region_databases(
    postgres_url: str, migrated_postgres_template: str, database_dropper: DatabaseDropper
) -> RegionDatabases:
    return RegionDatabases(postgres_url, migrated_postgres_template, database_dropper)


@contextmanager
def _region(
    name: str, databases: RegionDatabases, node: str, workdir: Path, serve: bool
) -> Iterator[Region]:
    binary = redis_server_binary()
    with created_database(
        databases.server_url, f"{node}_{name}", databases.dropper, databases.template
    ) as url:
        redis_server = RedisServerProcess(binary, free_port(), workdir)
        redis_server.start()
        database = Database(url)
        publisher = RedisEventPublisher(redis_server.url)
        factory = ServiceFactory(database, publish=publisher.publish)
        region = Region(name, url, database, redis_server, publisher, factory)
        try:
            if not serve:
                yield region
                return
            with served(create_app(Services(database, factory, redis_server.url))) as url:
                region.api_url = url
                yield region
        finally:
            publisher.close()
            database.dispose()
            redis_server.kill()


@pytest.fixture
def region_a(
    region_databases: RegionDatabases, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Region]:
    (tmp_path / "a").mkdir()
    with _region("a", region_databases, request.node.name, tmp_path / "a", serve=False) as region:
        yield region


@pytest.fixture
def region_b(
    region_databases: RegionDatabases, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Region]:
    (tmp_path / "b").mkdir()
    with _region("b", region_databases, request.node.name, tmp_path / "b", serve=True) as region:
        yield region


@dataclass
class Link:
    """Region B's database and Redis as the replicator in region A reaches them."""

    database: LinkProxy
    redis: LinkProxy

    def cut(self) -> None:
        self.database.cut()
        self.redis.cut()

    def restore(self) -> None:
        self.database.restore()
        self.redis.restore()

    def database_url(self, direct_url: str) -> str:
        return (
            make_url(direct_url)
            .set(host="127.0.0.1", port=self.database.port)
            .render_as_string(hide_password=False)
        )

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis.port}/0"


@pytest.fixture
def link(region_b: Region) -> Iterator[Link]:
    server = make_url(region_b.database_url)
    with (
        LinkProxy(server.host or "127.0.0.1", server.port or 5432) as database,
        LinkProxy("127.0.0.1", region_b.redis.port) as redis_link,
    ):
        yield Link(database, redis_link)


@dataclass
class RunningReplicator:
    replicator: RegionReplicator
    replica: Database
    publisher: RedisEventPublisher
    stop: threading.Event
    thread: threading.Thread

    def halt(self) -> None:
        self.stop.set()
        self.thread.join(10)
        assert not self.thread.is_alive(), "the replicator did not stop"


@contextmanager
def running_replicator(
    region_a: Region, region_b: Region, link: Link
) -> Iterator[RunningReplicator]:
    """A replicator in region A, reaching region B through `link`, passing in a thread."""
    replica = Database(link.database_url(region_b.database_url))
    publisher = RedisEventPublisher(link.redis_url, probe_backoff=QUICK_PROBES)
    replicator = RegionReplicator(region_a.database, replica, publisher)
    stop = threading.Event()
    thread = threading.Thread(
        target=replicator.run, args=(stop, PASS_INTERVAL_SECONDS), daemon=True
    )
    thread.start()
    running = RunningReplicator(replicator, replica, publisher, stop, thread)
    try:
        yield running
    finally:
        running.halt()
        publisher.close()
        replica.dispose()


@pytest.fixture
def replicator(region_a: Region, region_b: Region, link: Link) -> Iterator[RunningReplicator]:
    with running_replicator(region_a, region_b, link) as running:
        yield running
