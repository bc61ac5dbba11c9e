"""The app's wiring: one database and one service factory for the process, built at start-up.

Routes reach the services through the `services` dependency, so a test builds the app on its
own database (`create_app(Services(...))`) and every route sees the same wiring.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import Request

if TYPE_CHECKING:
    from resources.database import Database
    from services.factory import ServiceFactory


@dataclass(frozen=True)
class Services:
    database: Database
    factory: ServiceFactory
    redis_url: str | None = None  # None: no Redis (live events from the database, limits here)

    @classmethod
    def from_environment(cls) -> Services:
        """The configured database (checked to be at the current schema) and Redis."""
        from resources.database import Database
        from resources.database.schema_version import ensure_current
        from resources.settings import database_url, redis_url
        from services.factory import ServiceFactory

        database = Database(database_url())
        ensure_current(database.engine)
        url = redis_url()
        publish = None
        if url:
            from resources.redis.live_events import make_event_publisher

            publish = make_event_publisher(url).publish
        return cls(database, ServiceFactory(database, publish=publish), redis_url=url)

    def close(self) -> None:
        self.database.dispose()


def services(request: Request) -> Services:
    return request.app.state.services
