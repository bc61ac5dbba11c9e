"""A wave: sessions of one tenant, claimed together and supervised by one run.

The run key is derived from the claimed sessions and their versions, so a sensor tick that is
evaluated twice asks for the same run, and a later claim of the same sessions gets a new one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from domain.session import Session

TENANT_TAG = "tenant"
WAVE_TAG = "indorch/wave"
SESSIONS_TAG = "indorch/sessions"
MAX_SESSION_IDS_IN_TAG = 20
MAX_RUNTIME_TAG = "dagster/max_runtime"  # run monitoring fails a run that outlives it
PARTITION_TAG = "dagster/partition"  # the run's partition (the tenant), as a RunRequest sets it
# Room beyond the longest session's max duration: waiting for an agent slot, startup, teardown.
RUNTIME_MARGIN_SECONDS = 900
WAVE_OP = "supervise_wave"
JOB_NAME = "session_wave"


@dataclass(frozen=True)
class Wave:
    tenant_id: str
    session_ids: tuple[str, ...]
    wave_id: str
    longest_session_seconds: int = 86_400
    top_up_seconds: int = 0  # how long it may take on new sessions beyond its first ones' time

    def run_config(self) -> dict[str, object]:
        return {
            "ops": {
                WAVE_OP: {
                    "config": {
                        "tenant": self.tenant_id,
                        "session_ids": list(self.session_ids),
                        "wave_id": self.wave_id,
                    }
                }
            }
        }

    def tags(self) -> dict[str, str]:
        return {
            **wave_tags(self.tenant_id, self.wave_id, self.session_ids),
            MAX_RUNTIME_TAG: str(
                self.longest_session_seconds + self.top_up_seconds + RUNTIME_MARGIN_SECONDS
            ),
        }


def wave_id_for(tenant_id: str, sessions: list[Session], purpose: str) -> str:
    digest = hashlib.sha256(
        "|".join([tenant_id, purpose, *(f"{s.id}@{s.version}" for s in sessions)]).encode()
    ).hexdigest()[:20]
    return f"wave-{tenant_id}-{digest}"


def wave_tags(
    tenant_id: str, wave_id: str, session_ids: tuple[str, ...] | list[str]
) -> dict[str, str]:
    shown = list(session_ids)[:MAX_SESSION_IDS_IN_TAG]
    more = len(session_ids) - len(shown)
    return {
        TENANT_TAG: tenant_id,
        WAVE_TAG: wave_id,
        SESSIONS_TAG: ",".join(shown) + (f",+{more} more" if more > 0 else ""),
    }


def chunk(sessions: list[Session], size: int) -> list[list[Session]]:
    return [sessions[i : i + size] for i in range(0, len(sessions), size)]
