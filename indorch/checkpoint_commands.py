"""`indorch session checkpoints`: what a session had done at each completed agent step.

Registered on the `session` command group (`indorch.main` imports this module), kept apart from
`session_commands` so that module stays about submitting and steering.
"""

from __future__ import annotations

from typing import Any

from domain.caller import Caller
from indorch.context import service_factory, tenant_database
from indorch.output import print_rows
from indorch.session_commands import JSON_OPTION, SESSION_ARGUMENT, TENANT_OPTION, session_app

CHECKPOINT_COLUMNS = ("#", "at", "attempt", "files changed", "tokens in/out", "step")
STEP_SHOWN_CHARS = 60


def _row(checkpoint: Any) -> dict[str, Any]:
    data = checkpoint.data
    text = " ".join(str(data.get("text") or "").split())
    return {
        "#": checkpoint.sequence,
        "at": checkpoint.created_at.isoformat(timespec="seconds"),
        "attempt": int(data.get("attempt", 0)) + 1,
        "files changed": ", ".join(data.get("files_changed") or []) or None,
        "tokens in/out": f"{data.get('tokens_in', 0)}/{data.get('tokens_out', 0)}",
        "step": text[:STEP_SHOWN_CHARS] + ("…" if len(text) > STEP_SHOWN_CHARS else ""),
    }


@session_app.command("checkpoints")
def checkpoints(
    session_id: str = SESSION_ARGUMENT,
    tenant: str = TENANT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """A session's checkpoints, oldest first: one per completed agent step (the newest 100)."""
    with tenant_database(tenant) as database:
        kept = (
            service_factory(database).sessions().checkpoints(Caller.operator(), tenant, session_id)
        )
    if as_json:
        print_rows([c.model_dump(mode="json") for c in kept], (), as_json=True)
    else:
        print_rows([_row(c) for c in kept], CHECKPOINT_COLUMNS, as_json=False)
