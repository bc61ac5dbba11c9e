"""The caller's tenant's users (`services.user_admin`): listed by any of its callers; created,
given another role, suspended and reactivated by its ADMIN. A user's role caps its keys' roles,
and a suspended user's keys stop authenticating at once."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.authentication import CallerDep
from api.request_body import RequestBody
from api.services import ServicesDep
from domain.tenant import Role, User

router = APIRouter(prefix="/users", tags=["admin"])


class NewUser(RequestBody):
    email: str = Field(min_length=3, max_length=320)
    name: str = Field(default="", max_length=200)
    role: Role = Role.MEMBER


class UserChange(RequestBody):
    """Set either or both: the new role, whether it is active (false: suspended)."""

    role: Role | None = None
    active: bool | None = None


class UserOut(BaseModel):
    id: str
    email: str
    name: str
    role: Role
    active: bool
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(**user.model_dump(include=set(cls.model_fields)))


@router.get("")
def list_users(caller: CallerDep, wiring: ServicesDep) -> list[UserOut]:
    assert caller.tenant_id is not None
    return [UserOut.of(user) for user in wiring.factory.users().list(caller, caller.tenant_id)]


@router.post("", status_code=201)
def create(body: NewUser, caller: CallerDep, wiring: ServicesDep) -> UserOut:
    assert caller.tenant_id is not None
    user = User(tenant_id=caller.tenant_id, **body.model_dump())
    return UserOut.of(wiring.factory.users().create(caller, user))


@router.patch("/{user}")
def change(user: str, body: UserChange, caller: CallerDep, wiring: ServicesDep) -> UserOut:
    """`user` is its id or e-mail. An empty change answers the user as it is."""
    assert caller.tenant_id is not None
    admin, tenant = wiring.factory.users(), caller.tenant_id
    changed = None
    if body.role is not None:
        changed = admin.set_role(caller, tenant, user, body.role)
    if body.active is True:
        changed = admin.reactivate(caller, tenant, user)
    elif body.active is False:
        changed = admin.suspend(caller, tenant, user)
    if changed is None:
        changed = admin.get(caller, tenant, user)
    return UserOut.of(changed)
