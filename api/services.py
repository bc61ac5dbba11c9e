"""The app's wiring: one database and one service factory for the process, built at start-up.

Routes reach the services through the `services` dependency, so a test builds the app on its
own database (`create_app(Services(...))`) and every route sees the same wiring.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

if TYPE_CHECKING:
    from resources.database import Database
    from services.factory import ServiceFactory
    from services.fine_tuning import TrainingProvider


@dataclass(frozen=True)
class Services:
    database: Database
    factory: ServiceFactory
    redis_url: str | None = None  # None: no Redis (live events from the database, limits here)
    # The fine-tuning provider, built when a job it holds is cancelled (None: the configured one).
    training_provider: Callable[[], TrainingProvider] | None = None
    dagster_home: str | None = None  # None: readiness does not ask the Dagster daemon

    @classmethod
    def from_environment(cls) -> Services:
        """The configured database (checked to be at the current schema) and Redis."""
        from resources.database import Database
        from resources.database.schema_version import ensure_current
        from resources.settings import database_url, redis_url
        from services.factory import ServiceFactory
        from services.wave_trigger import wave_trigger_from_environment

        database = Database(database_url())
        ensure_current(database.engine)
        url = redis_url()
        publish = None
        if url:
            from resources.redis.live_events import make_event_publisher

            publish = make_event_publisher(url).publish
        return cls(
            database,
            ServiceFactory(database, publish=publish, wave_trigger=wave_trigger_from_environment()),
            redis_url=url,
            dagster_home=os.environ.get("DAGSTER_HOME") or None,
        )

    def close(self) -> None:
        self.database.dispose()

    def provider(self) -> TrainingProvider:
        """The fine-tuning provider (the environment's unless the wiring names one)."""
        if self.training_provider is not None:
            return self.training_provider()
        from resources.training_provider.resource import configured_training_provider_resource

        return configured_training_provider_resource().client()


async def services(request: Request) -> Services:
    """Async (it does no I/O): FastAPI runs a sync dependency in a worker thread, a hop that
    costs more than the lookup itself."""
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(services)]
