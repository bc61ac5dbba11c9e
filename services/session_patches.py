"""What a session on a repository delivered: its branch on the remote and the patch against the
commit it started from, read by any caller of its tenant from VIEWER up (the CLI's `session
patch`, the API's `/sessions/{id}/patch` and `/branch`).

The branch is known from the start (`indorch/<session id>`); the commit, the base and the patch
once the session COMPLETED and pushed. A session on no repository has neither (`InvalidInput`).
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.caller import Caller
from domain.code_repository import session_branch
from domain.errors import InvalidInput
from domain.session import Session
from domain.tenant import Role
from resources.database import Database, tenant_scope, unit_of_work

READ_ROLE = Role.VIEWER


@dataclass(frozen=True)
class SessionBranch:
    session_id: str
    status: str
    repository: str
    branch: str
    remote: str | None  # None: the repository was removed since
    pushed: bool
    base: str | None
    commit: str | None


@dataclass(frozen=True)
class SessionPatch:
    branch: SessionBranch
    patch: str
    truncated_from: int | None  # the full patch's length when only its start was kept


class SessionPatches:
    def __init__(self, database: Database) -> None:
        self._database = database

    def branch(self, caller: Caller, tenant_id: str, session_id: str) -> SessionBranch:
        return self._read(caller, tenant_id, session_id)[1]

    def patch(self, caller: Caller, tenant_id: str, session_id: str) -> SessionPatch:
        """The patch its branch pushed; `InvalidInput` until it has one."""
        session, branch = self._read(caller, tenant_id, session_id)
        result = session.result or {}
        if "patch" not in result:
            raise InvalidInput("session", f"{session.id} is {branch.status}: no patch pushed yet")
        truncated = result.get("patch_truncated_from")
        return SessionPatch(branch, str(result["patch"]), int(truncated) if truncated else None)

    def _read(
        self, caller: Caller, tenant_id: str, session_id: str
    ) -> tuple[Session, SessionBranch]:
        caller.require_tenant(tenant_id)
        caller.require(READ_ROLE, "read a session's branch")
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            session = uow.sessions.get(session_id)
            if session.repository is None:
                raise InvalidInput(
                    "session", f"{session.id} works on no repository: it has no branch or patch"
                )
            repository = uow.code_repositories.find(session.repository)
        return session, _branch(session, repository.url if repository else None)


def _branch(session: Session, remote: str | None) -> SessionBranch:
    assert session.repository is not None
    result = session.result or {}
    return SessionBranch(
        session_id=session.id,
        status=session.status.value,
        repository=session.repository,
        branch=str(result.get("branch") or session_branch(session.id)),
        remote=remote,
        pushed="commit" in result,
        base=result.get("base"),
        commit=result.get("commit"),
    )
