"""Who the key is: lets a tenant's tool check its key and role before it acts."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from api.authentication import CallerDep

router = APIRouter(tags=["identity"])


class Identity(BaseModel):
    tenant_id: str
    role: str


@router.get("/whoami")
def whoami(caller: CallerDep) -> Identity:
    assert caller.tenant_id is not None  # an API caller is always a tenant's
    return Identity(tenant_id=caller.tenant_id, role=caller.role.value)
