"""What a session on a repository delivered (`services.session_patches`): its branch and remote,
and the patch against the commit it started from, as `git apply` takes it. Any caller of the
tenant reads them; another tenant's session answers 404."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

from api.authentication import CallerDep
from api.errors import text_route_responses
from api.services import ServicesDep
from services.session_patches import SessionBranch

router = APIRouter(prefix="/sessions", tags=["session patches"])
PATCH_MEDIA_TYPE = "text/x-diff"


class BranchOut(BaseModel):
    session_id: str
    status: str
    repository: str
    branch: str
    remote: str | None
    pushed: bool
    base: str | None
    commit: str | None

    @classmethod
    def of(cls, branch: SessionBranch) -> BranchOut:
        return cls(**vars(branch))


@router.get("/{session_id}/branch")
def branch(session_id: str, caller: CallerDep, wiring: ServicesDep) -> BranchOut:
    """The branch the session works on (known from its start) and, once pushed, its commit."""
    assert caller.tenant_id is not None
    found = wiring.factory.session_patches().branch(caller, caller.tenant_id, session_id)
    return BranchOut.of(found)


@router.get(
    "/{session_id}/patch",
    response_class=PlainTextResponse,
    responses=text_route_responses(PATCH_MEDIA_TYPE),
)
def patch(session_id: str, caller: CallerDep, wiring: ServicesDep) -> PlainTextResponse:
    """The completed session's patch (422 until it pushed one); `X-Patch-Truncated-From` gives
    the full length when only its start was kept."""
    assert caller.tenant_id is not None
    found = wiring.factory.session_patches().patch(caller, caller.tenant_id, session_id)
    headers = {"X-Patch-Truncated-From": str(found.truncated_from)} if found.truncated_from else {}
    return PlainTextResponse(found.patch, media_type=PATCH_MEDIA_TYPE, headers=headers)
