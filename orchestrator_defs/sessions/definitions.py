"""The sessions area: the wave job and the `coding_sessions` asset it materializes."""

import dagster as dg

from assets.coding_sessions import CODING_SESSIONS
from orchestrator_defs.sessions.job import session_wave


def defs() -> dg.Definitions:
    return dg.Definitions(jobs=[session_wave], assets=[CODING_SESSIONS])
