"""The caller's tenant's API keys (`services.api_key_admin`): listed (prefixes, never keys) by any
of its callers, created and revoked by its ADMIN. A created key is answered once, in the create's
answer: only its hash is stored, so it cannot be shown again."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.authentication import CallerDep
from api.request_body import RequestBody
from api.services import ServicesDep
from domain.api_key import ApiKey
from domain.tenant import Role

router = APIRouter(prefix="/api-keys", tags=["admin"])


class NewKey(RequestBody):
    name: str = Field(min_length=1, max_length=200)
    role: Role = Role.MEMBER
    user_email: str | None = Field(default=None, max_length=320)


class KeyOut(BaseModel):
    id: str
    name: str
    prefix: str
    role: Role
    user_id: str | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, key: ApiKey) -> KeyOut:
        return cls(**key.model_dump(include=set(cls.model_fields)))


class CreatedKey(KeyOut):
    key: str = Field(description="The key itself: shown this once, never again.")


@router.get("")
def list_keys(caller: CallerDep, wiring: ServicesDep) -> list[KeyOut]:
    assert caller.tenant_id is not None
    return [KeyOut.of(key) for key in wiring.factory.api_keys().list(caller, caller.tenant_id)]


@router.post("", status_code=201)
def create(body: NewKey, caller: CallerDep, wiring: ServicesDep) -> CreatedKey:
    assert caller.tenant_id is not None
    key, plaintext = wiring.factory.api_keys().create(
        caller, caller.tenant_id, body.name, role=body.role, user_email=body.user_email
    )
    return CreatedKey(**KeyOut.of(key).model_dump(), key=plaintext)


@router.delete("/{key_id}")
def revoke(key_id: str, caller: CallerDep, wiring: ServicesDep) -> KeyOut:
    """The key stops authenticating at once."""
    assert caller.tenant_id is not None
    return KeyOut.of(wiring.factory.api_keys().revoke(caller, caller.tenant_id, key_id))
