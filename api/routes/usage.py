"""A tenant's metered usage (`services.usage_metering`): a month, one line per day (zeros where
nothing was used), as JSON or as the CSV `indorch usage export` writes. Its ADMIN reads it."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

from api.authentication import CallerDep
from api.errors import text_route_responses
from api.services import ServicesDep
from domain.usage import DailyUsage
from services.usage_metering import MONTH

router = APIRouter(prefix="/usage", tags=["usage"])
CSV_MEDIA_TYPE = "text/csv"
MonthQuery = Annotated[str, Query(pattern=MONTH.pattern, examples=["2026-12"])]


class DayOut(BaseModel):
    day: date
    sessions: int
    tokens_in: int
    tokens_out: int
    fine_tuning_tokens: int
    total_tokens: int
    cost_usd: Decimal
    agent_minutes: float

    @classmethod
    def of(cls, usage: DailyUsage) -> DayOut:
        return cls(
            **usage.model_dump(
                include={"day", "sessions", "tokens_in", "tokens_out", "fine_tuning_tokens"}
            ),
            total_tokens=usage.total_tokens,
            cost_usd=usage.cost_usd,
            agent_minutes=round(usage.agent_minutes, 2),
        )


class MonthOut(BaseModel):
    month: str
    days: list[DayOut]


@router.get("")
def month(month: MonthQuery, caller: CallerDep, wiring: ServicesDep) -> MonthOut:
    assert caller.tenant_id is not None
    days = wiring.factory.usage().month(caller, caller.tenant_id, month)
    return MonthOut(month=month, days=[DayOut.of(day) for day in days])


@router.get(
    "/export",
    response_class=PlainTextResponse,
    responses=text_route_responses(CSV_MEDIA_TYPE),
)
def export(month: MonthQuery, caller: CallerDep, wiring: ServicesDep) -> PlainTextResponse:
    """The month as CSV, the columns of `indorch usage export`."""
    assert caller.tenant_id is not None
    text = wiring.factory.usage().export_csv(caller, caller.tenant_id, month)
    filename = f"usage-{caller.tenant_id}-{month}.csv"
    return PlainTextResponse(
        text,
        media_type=CSV_MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
