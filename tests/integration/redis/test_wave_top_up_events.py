"""A wave's top-up claims are announced on the live feed like the dispatcher's: a session the
wave takes on itself goes PENDING -> QUEUED on Redis too, not only in the database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from domain.caller import Caller
from domain.tenant import Tenant
from orchestrator_defs.sessions.job import wave_top_up
from resources.database import Database, unit_of_work
from resources.database_resource import DatabaseResource
from resources.redis.live_events import RedisEventReader
from resources.redis.resource import RedisResource
from resources.supervision_config import SupervisionConfig
from services.factory import ServiceFactory
from services.session_service import SessionService, SubmitSession
from services.waves import MAX_RUNTIME_TAG

pytestmark = pytest.mark.redis


@pytest.fixture
def database(migrated_sqlite_url: str, tenant: str) -> Iterator[Database]:
    database = Database(migrated_sqlite_url)
    with unit_of_work(database) as uow:
        uow.tenants.add(Tenant(slug=tenant, name=tenant))
    yield database
    database.dispose()


def test_a_session_claimed_by_a_waves_top_up_is_announced_on_the_live_feed(
    redis_url: str, database: Database, tenant: str
) -> None:
    waiting = SessionService(database).submit(
        Caller.operator(), tenant, SubmitSession(title="later", prompt="hi")
    )
    supervision = SupervisionConfig()
    database_resource = DatabaseResource(url=str(database.url))
    redis_resource = RedisResource(url=redis_url)
    # Wired as the wave's op wires it, from the code location's resources.
    services = ServiceFactory.from_resources(database_resource, redis_resource, supervision)
    top_up = wave_top_up({MAX_RUNTIME_TAG: "7200"}, services, tenant, "wave-1", supervision)
    assert top_up is not None

    try:
        assert top_up.claim(10, 3600) == [waiting.id]
    finally:
        redis_resource.close()
        database_resource.dispose()

    reader = RedisEventReader(redis_url)
    try:
        entries = reader.read_session_events(tenant, waiting.id)
    finally:
        reader.close()
    changes = [(e.event.old_status, e.event.new_status, e.event.reason) for e in entries]
    assert changes == [("PENDING", "QUEUED", "claimed by wave-1")]
