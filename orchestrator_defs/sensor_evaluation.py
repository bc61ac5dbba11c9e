"""Evaluating the code location's sensors outside the daemon (benchmarks, tests), as it would.

A sensor's partitioned run requests resolve against the job in the repository and the
instance's dynamic partitions; a bare `build_sensor_context` has neither. This builds the context
with both, so a tick evaluated here returns what the daemon's would.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import dagster as dg

from orchestrator_defs.sessions.job import session_wave
from resources.opencode.resource import OpenCodeResource


@contextmanager
def sensor_context(
    instance: dg.DagsterInstance, resources: Mapping[str, Any], cursor: str | None = None
) -> Iterator[dg.SensorEvaluationContext]:
    """A sensor's context with the session job and `resources` (the OpenCode one defaulted)."""
    with dg.build_sensor_context(
        instance=instance,
        instance_ref=instance.get_ref(),
        resources=resources,
        cursor=cursor,
        definitions=_definitions(resources),
    ) as context:
        yield context


_built: dict[int, tuple[Mapping[str, Any], dg.Definitions]] = {}


def _definitions(resources: Mapping[str, Any]) -> dg.Definitions:
    """The definitions for these resources, built once (a bench ticks every 2 s with the same
    resources; building and resolving them each time cost its process CPU the daemon's does not)."""
    kept = _built.get(id(resources))
    if kept is None or kept[0] is not resources:
        bound = {"opencode": OpenCodeResource(), **resources}
        kept = _built[id(resources)] = (
            resources,
            dg.Definitions(jobs=[session_wave], resources=bound),
        )
    return kept[1]
