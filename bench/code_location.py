"""The code location the bench launches runs from: the project's own, with the wave size and
whether waves top up taken from the environment (`INDORCH_BENCH_WAVE_SIZE`,
`INDORCH_BENCH_TOP_UP`), so one definitions module serves every scenario. For experiments, the
environment may also set the starts in flight per agent (`INDORCH_BENCH_STARTS_PER_AGENT`) and
switch tenant worktrees off (`INDORCH_BENCH_TENANT_WORKSPACES=0`) or have sessions share their
tenant's worktree (`INDORCH_BENCH_SESSION_WORKSPACES=0`), and set the scratch slots kept and
warmed ahead per agent (`INDORCH_BENCH_WARM_SLOTS`), and have the agent-health sensor warm them
ahead of the burst (`INDORCH_BENCH_WARM_SLOTS_AHEAD=1`), and bound the sessions in
workspaces of their own in flight per agent (`INDORCH_BENCH_WORKSPACES_PER_AGENT`, 0: no
bound). Everything else (jobs, ops, sensors, resources) is the project's.
"""

from __future__ import annotations

import os

import dagster as dg

from orchestrator_defs.definitions import AREAS, resources
from resources.supervision_config import SupervisionConfig

WAVE_SIZE_VAR = "INDORCH_BENCH_WAVE_SIZE"
TOP_UP_VAR = "INDORCH_BENCH_TOP_UP"  # "0": waves never take on new sessions (the naive design)
WORKSPACES_VAR = "INDORCH_BENCH_TENANT_WORKSPACES"  # "0": sessions in the servers' own workspace
# "0": sessions without a repository share their tenant's worktree (the default: one each)
SESSION_WORKSPACES_VAR = "INDORCH_BENCH_SESSION_WORKSPACES"
STARTS_VAR = "INDORCH_BENCH_STARTS_PER_AGENT"  # session starts in flight per agent (default: the
# project's)
WARM_SLOTS_VAR = "INDORCH_BENCH_WARM_SLOTS"  # scratch slots kept (and warmed ahead) per agent
WARM_AHEAD_VAR = "INDORCH_BENCH_WARM_SLOTS_AHEAD"  # "1": slots made and warmed before the burst
# sessions in workspaces of their own in flight per agent in a wave (default: unbounded)
WORKSPACES_BOUND_VAR = "INDORCH_BENCH_WORKSPACES_PER_AGENT"


def bench_supervision() -> SupervisionConfig:
    default = SupervisionConfig()
    top_up = os.environ.get(TOP_UP_VAR, "1") != "0"
    return SupervisionConfig(
        wave_size=int(os.environ.get(WAVE_SIZE_VAR, str(default.wave_size))),
        top_up_seconds=default.top_up_seconds if top_up else 0,
        tenant_workspaces=os.environ.get(WORKSPACES_VAR, "1") != "0",
        session_workspaces=os.environ.get(SESSION_WORKSPACES_VAR, "1") != "0",
        starts_per_agent=int(os.environ.get(STARTS_VAR, str(default.starts_per_agent))),
        warm_slots_ahead=os.environ.get(WARM_AHEAD_VAR, "0") == "1",
        warm_slots_per_agent=int(os.environ.get(WARM_SLOTS_VAR, str(default.warm_slots_per_agent))),
        workspaces_per_agent=workspaces_bound(default.workspaces_per_agent),
    )


def workspaces_bound(default: int | None) -> int | None:
    """The variable's bound; 0 for none; the resource's default when unset."""
    value = os.environ.get(WORKSPACES_BOUND_VAR)
    if not value:
        return default
    return int(value) or None


@dg.definitions
def defs() -> dg.Definitions:
    bound = resources()
    bound["supervision"] = bench_supervision()
    return dg.Definitions.merge(*(area() for area in AREAS), dg.Definitions(resources=bound))
