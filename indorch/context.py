"""What every command needs: the configured database, checked to be at the current schema.

The database stack (SQLAlchemy, Alembic, the repositories) is imported when a command opens the
database, not when `indorch` starts (see `indorch.main`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from domain.events import SessionEvent
    from resources.database import Database, UnitOfWork
    from resources.redis.live_events import EventPublisher
    from services.factory import EventSink, ServiceFactory


def open_database() -> Database:
    from resources.database import Database
    from resources.database.schema_version import ensure_current
    from resources.settings import database_url

    database = Database(database_url())
    try:
        ensure_current(database.engine)
    except Exception:
        database.dispose()
        raise
    return database


@contextmanager
def tenant_work(slug: str) -> Iterator[UnitOfWork]:
    """A transaction scoped to an existing tenant (unknown tenant -> NotFound)."""
    from resources.database import tenant_scope, unit_of_work

    database = open_database()
    try:
        with unit_of_work(database) as uow:
            uow.tenants.get(slug)
        with tenant_scope(slug), unit_of_work(database) as uow:
            yield uow
    finally:
        database.dispose()


@contextmanager
def tenant_database(slug: str) -> Iterator[Database]:
    """The database, once the tenant is known to exist (unknown tenant -> NotFound); for the
    services, which open their own tenant-scoped transactions."""
    from resources.database import unit_of_work

    database = open_database()
    try:
        with unit_of_work(database) as uow:
            uow.tenants.get(slug)
        yield database
    finally:
        database.dispose()


def service_factory(database: Database, *, steering: bool = False) -> ServiceFactory:
    """The services as the sensors and the API get them. Only what a command needs is loaded,
    for start-up time: the OpenCode client when `steering` (cancel, pause, stop abort the
    agent's turn), the Redis client at the first event published, when Redis is configured
    (without it nothing is published), and the wave trigger when a Dagster webserver is
    configured (a submit launches its tenant's wave at once)."""
    from resources.settings import redis_url
    from services.factory import ServiceFactory
    from services.wave_trigger import wave_trigger_from_environment

    agent_control = None
    if steering:
        from resources.opencode.control import OpenCodeAgentControl

        agent_control = OpenCodeAgentControl()
    url = redis_url()
    publish = _publish_to(url) if url else None
    return ServiceFactory(
        database,
        publish=publish,
        agent_control=agent_control,
        wave_trigger=wave_trigger_from_environment(),
    )


def _publish_to(url: str) -> EventSink:
    publisher: EventPublisher | None = None

    def publish(event: SessionEvent) -> None:
        nonlocal publisher
        if publisher is None:
            from resources.redis.live_events import make_event_publisher

            publisher = make_event_publisher(url)
        publisher.publish(event)

    return publish


@contextmanager
def services() -> Iterator[ServiceFactory]:
    """The services on the configured database, disposed of when the command is done."""
    database = open_database()
    try:
        yield service_factory(database)
    finally:
        database.dispose()
