"""`indorch session patch`: the change a session on a repository pushed, as `git apply` takes it.

Registered on the `session` command group (`indorch.main` imports this module). A session not on
a repository, or not (yet) COMPLETED, has no patch: one line, exit 2.
"""

from __future__ import annotations

import sys

from domain.caller import Caller
from indorch.context import service_factory, tenant_database
from indorch.session_commands import SESSION_ARGUMENT, TENANT_OPTION, session_app


@session_app.command("patch")
def patch(session_id: str = SESSION_ARGUMENT, tenant: str = TENANT_OPTION) -> None:
    """Print the patch of a completed session's branch against the commit it started from."""
    with tenant_database(tenant) as database:
        found = (
            service_factory(database).session_patches().patch(Caller.operator(), tenant, session_id)
        )
    sys.stdout.write(found.patch)
