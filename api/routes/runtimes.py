"""The caller's tenant's managed runtime on this host (`services.runtime_manager`): read by any
of its callers, started and stopped by its LEAD or ADMIN. A start with the host's memory budget
full answers 202 with the runtime WAITING_FOR_SLOT: its sessions stay queued until a slot frees.
No process id, OS user or password is shown: they are the host's, not the tenant's."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Response
from pydantic import BaseModel

from api.authentication import CallerDep
from api.services import ServicesDep
from domain.runtime import Runtime, RuntimeSlotUnavailable, RuntimeStatus

router = APIRouter(prefix="/runtimes", tags=["runtimes"])


class RuntimeOut(BaseModel):
    tenant_id: str
    host: str
    status: RuntimeStatus
    sandboxed: bool
    agent_id: str | None
    reason: str
    restarts: int
    resident_mb: int | None
    started_at: datetime | None
    last_busy_at: datetime | None
    waiting_since: datetime | None

    @classmethod
    def of(cls, runtime: Runtime) -> RuntimeOut:
        return cls(**runtime.model_dump(include=set(cls.model_fields)))


@router.get("")
def list_runtimes(caller: CallerDep, wiring: ServicesDep) -> list[RuntimeOut]:
    assert caller.tenant_id is not None
    manager = wiring.factory.runtimes()
    return [RuntimeOut.of(runtime) for runtime in manager.list(caller, caller.tenant_id)]


@router.post(
    "/start",
    responses={202: {"model": RuntimeOut, "description": "waiting for a slot of the budget"}},
)
def start(caller: CallerDep, wiring: ServicesDep, response: Response) -> RuntimeOut:
    """Start the tenant's runtime here now (live already: as it is)."""
    assert caller.tenant_id is not None
    manager = wiring.factory.runtimes()
    try:
        return RuntimeOut.of(manager.start(caller, caller.tenant_id))
    except RuntimeSlotUnavailable:
        response.status_code = 202
        return RuntimeOut.of(manager.get(caller, caller.tenant_id))


@router.post("/stop")
def stop(caller: CallerDep, wiring: ServicesDep) -> RuntimeOut:
    """Stop it (its agent deactivated first); work starts it again on demand."""
    assert caller.tenant_id is not None
    runtime = wiring.factory.runtimes().stop(caller, caller.tenant_id, "stopped through the API")
    return RuntimeOut.of(runtime)
