"""A tenant's code repositories (`services.code_repositories`): added and removed by its LEAD or
ADMIN, read by any of its callers. Credentials are only the name of a tenant secret (a URL
holding a password is refused); the secret's value is never part of a repository."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.authentication import CallerDep
from api.request_body import RequestBody
from api.services import ServicesDep
from domain.code_repository import SETUP_SCRIPT_MAX, URL_MAX, CodeRepository

router = APIRouter(prefix="/repositories", tags=["repositories"])


class NewRepository(RequestBody):
    name: str = Field(min_length=1, max_length=63)
    url: str = Field(min_length=1, max_length=URL_MAX)
    default_ref: str = Field(default="main", min_length=1, max_length=250)
    credentials_secret: str | None = Field(default=None, max_length=100)
    setup_script: str | None = Field(default=None, max_length=SETUP_SCRIPT_MAX)


class RepositoryOut(BaseModel):
    name: str
    url: str
    default_ref: str
    credentials_secret: str | None
    setup_script: str | None
    created_at: datetime

    @classmethod
    def of(cls, repository: CodeRepository) -> RepositoryOut:
        return cls(**repository.model_dump(include=set(cls.model_fields)))


@router.post("", status_code=201)
def add(body: NewRepository, caller: CallerDep, wiring: ServicesDep) -> RepositoryOut:
    assert caller.tenant_id is not None
    repository = CodeRepository(tenant_id=caller.tenant_id, **body.model_dump())
    return RepositoryOut.of(wiring.factory.repositories().register(caller, repository))


@router.get("")
def list_repositories(caller: CallerDep, wiring: ServicesDep) -> list[RepositoryOut]:
    assert caller.tenant_id is not None
    found = wiring.factory.repositories().list(caller, caller.tenant_id)
    return [RepositoryOut.of(repository) for repository in found]


@router.get("/{name}")
def show(name: str, caller: CallerDep, wiring: ServicesDep) -> RepositoryOut:
    assert caller.tenant_id is not None
    return RepositoryOut.of(wiring.factory.repositories().get(caller, caller.tenant_id, name))


@router.delete("/{name}")
def remove(name: str, caller: CallerDep, wiring: ServicesDep) -> RepositoryOut:
    """Forget it: its sessions keep their history; one not yet started then fails."""
    assert caller.tenant_id is not None
    return RepositoryOut.of(wiring.factory.repositories().remove(caller, caller.tenant_id, name))
