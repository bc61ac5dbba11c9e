"""The caller's own tenant (`services.tenant_admin`), read by any of its callers, its display name
changed by its ADMIN. Creating, deactivating and deleting tenants, their session limits and token
budgets are the operator's (the CLI on the control plane's host): the API is a tenant's, so it
has no route for them, and an unknown field is refused. Another tenant answers 404."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.authentication import CallerDep
from api.request_body import RequestBody
from api.services import ServicesDep
from domain.tenant import Tenant

router = APIRouter(prefix="/tenants", tags=["admin"])


class TenantOut(BaseModel):
    slug: str
    name: str
    active: bool
    max_concurrent_sessions: int
    monthly_token_budget: int
    created_at: datetime

    @classmethod
    def of(cls, tenant: Tenant) -> TenantOut:
        return cls(**tenant.model_dump(include=set(cls.model_fields)))


class TenantChange(RequestBody):
    name: str = Field(min_length=1, max_length=200)


@router.get("")
def list_tenants(caller: CallerDep, wiring: ServicesDep) -> list[TenantOut]:
    """The caller's own tenant, alone."""
    return [TenantOut.of(tenant) for tenant in wiring.factory.tenants().list(caller)]


@router.get("/{slug}")
def show(slug: str, caller: CallerDep, wiring: ServicesDep) -> TenantOut:
    return TenantOut.of(wiring.factory.tenants().get(caller, slug))


@router.patch("/{slug}")
def change(slug: str, body: TenantChange, caller: CallerDep, wiring: ServicesDep) -> TenantOut:
    return TenantOut.of(wiring.factory.tenants().rename(caller, slug, body.name))
