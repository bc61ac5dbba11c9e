"""Small HTTP helpers shared by the OpenCode contract test modules (plain httpx)."""

from __future__ import annotations

import time
from typing import Any

import httpx

DIFF_SETTLE_SECONDS = 5.0


def settled_diff(client: httpx.Client, session_id: str, message_id: str) -> list[dict[str, Any]]:
    """``GET /session/{id}/diff?messageID=``, once it has settled.

    Observed on 1.18.33 (its own workspace and worktrees alike): the diff may lag
    ``session.idle`` and the completed assistant messages by a fraction of a second under load
    (empty first, complete ~0.2 s later), so an empty diff is asked again for a few seconds.
    """
    deadline = time.monotonic() + DIFF_SETTLE_SECONDS
    while True:
        response = client.get(f"/session/{session_id}/diff", params={"messageID": message_id})
        assert response.status_code == 200, response.text
        diff = response.json()
        if diff or time.monotonic() > deadline:
            return diff
        time.sleep(0.1)
