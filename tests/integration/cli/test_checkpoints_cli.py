"""`indorch session checkpoints`: a session's checkpoints, oldest first, as the wave recorded
them (one per completed agent step); another tenant's session is not found.

The checkpoints are written here through the repository a wave's event batch uses
(`add_next_checkpoint`); that a wave writes them at each step is the supervisor's own test.
"""

from __future__ import annotations

import json

from domain.checkpoint import step_checkpoint_data
from domain.clock import utcnow
from resources.database import Database, tenant_scope, unit_of_work
from tests.integration.cli.support import indorch, ok, one_line_error


def test_checkpoints_lists_each_step_and_hides_other_tenants_sessions(db_url: str) -> None:
    submitted = ok(db_url, "session", "submit", "-t", "acme", "--json", "--prompt", "Do it.")
    session_id = json.loads(submitted)["id"]
    database = Database(db_url)
    try:
        with tenant_scope("acme"), unit_of_work(database) as uow:
            for step, files in ((1, ["a.py"]), (2, ["a.py", "b.py"])):
                data = step_checkpoint_data(
                    attempt=0,
                    message_id=f"msg-{step}",
                    text=f"step {step} done",
                    files_changed=files,
                    tokens_in=100 * step,
                    tokens_out=10 * step,
                )
                uow.sessions.add_next_checkpoint(session_id, data, utcnow())
    finally:
        database.dispose()

    listed = json.loads(ok(db_url, "session", "checkpoints", "-t", "acme", session_id, "--json"))
    assert [c["sequence"] for c in listed] == [1, 2]
    assert listed[1]["data"]["files_changed"] == ["a.py", "b.py"]
    table = ok(db_url, "session", "checkpoints", "-t", "acme", session_id)
    assert "step 2 done" in table and "200/20" in table

    ok(db_url, "tenant", "create", "globex")
    other = indorch(db_url, "session", "checkpoints", "-t", "globex", session_id)
    assert other.returncode == 2
    assert "not found" in one_line_error(other)
