"""A tenant's promoted model (`services.model_promotion`): the current one and the history, read
by any of its callers; promoting (only on an evaluation that decided PROMOTE, else 409) and
rolling back (to the promotion before, or the agents' own model) by its LEAD or ADMIN."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.authentication import CallerDep
from api.request_body import RequestBody
from api.services import ServicesDep
from domain.promotion import ModelPromotion

router = APIRouter(prefix="/promotions", tags=["models"])


class Promote(RequestBody):
    evaluation_id: str = Field(min_length=1, max_length=100)


class PromotionOut(BaseModel):
    id: str
    model: str
    job_id: str | None
    evaluation_id: str | None
    reason: str
    promoted_at: datetime
    retired_at: datetime | None

    @classmethod
    def of(cls, promotion: ModelPromotion) -> PromotionOut:
        return cls(**promotion.model_dump(include=set(cls.model_fields)))


class CurrentModel(BaseModel):
    """The tenant's promoted model now; null: its agents' own model."""

    current: PromotionOut | None


@router.get("")
def history(caller: CallerDep, wiring: ServicesDep) -> list[PromotionOut]:
    """Every promotion, the retired ones with their retirement time."""
    assert caller.tenant_id is not None
    found = wiring.factory.promotions().history(caller, caller.tenant_id)
    return [PromotionOut.of(promotion) for promotion in found]


@router.get("/current")
def current(caller: CallerDep, wiring: ServicesDep) -> CurrentModel:
    assert caller.tenant_id is not None
    found = wiring.factory.promotions().current(caller, caller.tenant_id)
    return CurrentModel(current=PromotionOut.of(found) if found else None)


@router.post("", status_code=201)
def promote(body: Promote, caller: CallerDep, wiring: ServicesDep) -> PromotionOut:
    """The evaluation's candidate becomes the tenant's model (already it: the same promotion)."""
    assert caller.tenant_id is not None
    service = wiring.factory.promotions()
    return PromotionOut.of(service.promote(caller, caller.tenant_id, body.evaluation_id))


@router.post("/rollback")
def rollback(caller: CallerDep, wiring: ServicesDep) -> CurrentModel:
    """Retire the current promotion (404 when none); the one before it is current again."""
    assert caller.tenant_id is not None
    found = wiring.factory.promotions().rollback(caller, caller.tenant_id)
    return CurrentModel(current=PromotionOut.of(found) if found else None)
