"""A tenant's secrets (`services.tenant_secrets`), write-only: set and deleted by its ADMIN, their
names and dates listed from LEAD up. No route returns a value, and no answer, error or log line
quotes one (the value is only in the request that sets it)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from api.authentication import CallerDep
from api.request_body import RequestBody
from api.services import ServicesDep
from domain.tenant_secret import MAX_SECRET_BYTES, TenantSecret

router = APIRouter(prefix="/secrets", tags=["secrets"])


class SecretValue(RequestBody):
    value: str = Field(min_length=1, max_length=MAX_SECRET_BYTES)


class SecretOut(BaseModel):
    """A secret's name and when it was set: never its value."""

    name: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, secret: TenantSecret) -> SecretOut:
        return cls(name=secret.name, created_at=secret.created_at, updated_at=secret.updated_at)


@router.get("")
def list_secrets(caller: CallerDep, wiring: ServicesDep) -> list[SecretOut]:
    assert caller.tenant_id is not None
    return [SecretOut.of(s) for s in wiring.factory.secrets().list(caller, caller.tenant_id)]


@router.put("/{name}")
def set_secret(name: str, body: SecretValue, caller: CallerDep, wiring: ServicesDep) -> SecretOut:
    """Store the value sealed under `name`, replacing an earlier one."""
    assert caller.tenant_id is not None
    return SecretOut.of(wiring.factory.secrets().set(caller, caller.tenant_id, name, body.value))


@router.delete("/{name}", status_code=204)
def delete(name: str, caller: CallerDep, wiring: ServicesDep) -> Response:
    assert caller.tenant_id is not None
    wiring.factory.secrets().delete(caller, caller.tenant_id, name)
    return Response(status_code=204)
