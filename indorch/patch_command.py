"""`indorch session patch`: the change a session on a repository pushed, as `git apply` takes it.

Registered on the `session` command group (`indorch.main` imports this module). A session not on
a repository, or not (yet) COMPLETED, has no patch: one line, exit 2.
"""

from __future__ import annotations

import sys

from domain.errors import InvalidInput
from indorch.context import service_factory, tenant_database
from indorch.session_commands import SESSION_ARGUMENT, TENANT_OPTION, session_app


@session_app.command("patch")
def patch(session_id: str = SESSION_ARGUMENT, tenant: str = TENANT_OPTION) -> None:
    """Print the patch of a completed session's branch against the commit it started from."""
    with tenant_database(tenant) as database:
        session = service_factory(database).sessions().get(tenant, session_id)
    result = session.result or {}
    if session.repository is None:
        raise InvalidInput("session", f"{session.id} works on no repository: it has no patch")
    if "patch" not in result:
        raise InvalidInput(
            "session", f"{session.id} is {session.status.value}: no patch pushed yet"
        )
    sys.stdout.write(result["patch"])
