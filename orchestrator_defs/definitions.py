"""The Dagster code location: each area's own `defs()`, merged, with the resources bound once.

`workspace.yaml` loads this module. `defs` is a `@dg.definitions` function, so importing the
module builds nothing: the settings (and the state directory they may create) are read only when
Dagster, or a test, asks for the definitions.
"""

from __future__ import annotations

from collections.abc import Callable

import dagster as dg

from orchestrator_defs.maintenance.definitions import defs as maintenance_defs
from orchestrator_defs.models.definitions import defs as model_defs
from orchestrator_defs.sessions.definitions import defs as session_defs
from resources.database_resource import configured_database_resource
from resources.dataset_store import configured_dataset_store
from resources.opencode.resource import OpenCodeResource
from resources.redis.resource import configured_redis_resource
from resources.retention_policy import configured_retention_policy
from resources.supervision_config import SupervisionConfig
from resources.training_provider.resource import configured_training_provider_resource
from sensors.definitions import defs as sensor_defs

AREAS: tuple[Callable[[], dg.Definitions], ...] = (
    session_defs,
    model_defs,
    sensor_defs,
    maintenance_defs,
)


def resources() -> dict[str, dg.ConfigurableResource]:
    """Every resource under the name assets, sensors and ops ask for."""
    return {
        "database": configured_database_resource(),
        "opencode": OpenCodeResource(),
        "supervision": SupervisionConfig(),
        "redis": configured_redis_resource(),
        "datasets": configured_dataset_store(),
        "training_provider": configured_training_provider_resource(),
        "retention": configured_retention_policy(),
    }


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions.merge(
        *(area() for area in AREAS),
        dg.Definitions(resources=resources()),
    )
