"""The code location the bench launches runs from: the project's own, with the wave size and
whether waves top up taken from the environment (`INDORCH_BENCH_WAVE_SIZE`,
`INDORCH_BENCH_TOP_UP`), so one definitions module serves every scenario. Everything else
(jobs, ops, sensors, resources) is the project's.
"""

from __future__ import annotations

import os

import dagster as dg

from orchestrator_defs.definitions import AREAS, resources
from resources.supervision_config import SupervisionConfig

WAVE_SIZE_VAR = "INDORCH_BENCH_WAVE_SIZE"
TOP_UP_VAR = "INDORCH_BENCH_TOP_UP"  # "0": waves never take on new sessions (the naive design)


def bench_supervision() -> SupervisionConfig:
    default = SupervisionConfig()
    top_up = os.environ.get(TOP_UP_VAR, "1") != "0"
    return SupervisionConfig(
        wave_size=int(os.environ.get(WAVE_SIZE_VAR, str(default.wave_size))),
        top_up_seconds=default.top_up_seconds if top_up else 0,
    )


@dg.definitions
def defs() -> dg.Definitions:
    bound = resources()
    bound["supervision"] = bench_supervision()
    return dg.Definitions.merge(*(area() for area in AREAS), dg.Definitions(resources=bound))
