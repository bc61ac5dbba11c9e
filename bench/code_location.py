"""The code location the bench launches runs from: the project's own, with the wave size and
supervision timings taken from the environment (`INDORCH_BENCH_WAVE_SIZE`), so one definitions
module serves every wave size. Everything else (jobs, ops, sensors, resources) is the project's.
"""

from __future__ import annotations

import os

import dagster as dg

from orchestrator_defs.definitions import AREAS, resources
from resources.supervision_config import SupervisionConfig

WAVE_SIZE_VAR = "INDORCH_BENCH_WAVE_SIZE"


def bench_supervision() -> SupervisionConfig:
    return SupervisionConfig(wave_size=int(os.environ.get(WAVE_SIZE_VAR, "25")))


@dg.definitions
def defs() -> dg.Definitions:
    bound = resources()
    bound["supervision"] = bench_supervision()
    return dg.Definitions.merge(*(area() for area in AREAS), dg.Definitions(resources=bound))
