"""Usage metering for billing: a day's figures reconciled from the histories, and a month's
export, one CSV line per day."""

from __future__ import annotations

import calendar
import csv
import io
import re
from datetime import date

from domain.caller import Caller
from domain.errors import InvalidInput
from domain.tenant import Role
from domain.usage import DailyUsage
from resources.database import Database, tenant_scope, unit_of_work

MONTH = re.compile(r"^([1-9]\d{3})-(0[1-9]|1[0-2])$")  # year 0 has no calendar
CSV_COLUMNS = (
    "day",
    "sessions",
    "tokens_in",
    "tokens_out",
    "fine_tuning_tokens",
    "total_tokens",
    "cost_usd",
    "agent_minutes",
)


class UsageMetering:
    def __init__(self, database: Database) -> None:
        self._database = database

    def reconcile_day(self, caller: Caller, tenant: str, day: date) -> DailyUsage:
        caller.require_operator("reconcile usage")
        with unit_of_work(self._database) as uow:
            uow.tenants.get(tenant)  # NotFound for a partition of no tenant
        with tenant_scope(tenant), unit_of_work(self._database) as uow:
            activity = uow.usage_sources.session_activity(day)
            return uow.usage.reconcile_day(
                day,
                sessions=activity.sessions,
                agent_seconds=activity.agent_seconds,
                fine_tuning_tokens=uow.usage_sources.fine_tuning_tokens(day),
            )

    def month(self, caller: Caller, tenant: str, month: str) -> list[DailyUsage]:
        """Every day of the month, zeros where nothing was used."""
        caller.require_tenant(tenant)
        caller.require(Role.ADMIN, "export usage")
        first, last = month_bounds(month)
        with unit_of_work(self._database) as uow:
            uow.tenants.get(tenant)  # NotFound: an unknown tenant is not an empty month
        with tenant_scope(tenant), unit_of_work(self._database) as uow:
            recorded = {usage.day: usage for usage in uow.usage.between(first, last)}
        days = [date(first.year, first.month, n) for n in range(1, last.day + 1)]
        return [recorded.get(day, DailyUsage(tenant_id=tenant, day=day)) for day in days]

    def export_csv(self, caller: Caller, tenant: str, month: str) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for usage in self.month(caller, tenant, month):
            writer.writerow(
                (
                    usage.day.isoformat(),
                    usage.sessions,
                    usage.tokens_in,
                    usage.tokens_out,
                    usage.fine_tuning_tokens,
                    usage.total_tokens,
                    f"{usage.cost_usd:.6f}",
                    f"{usage.agent_minutes:.2f}",
                )
            )
        return out.getvalue()


def month_bounds(month: str) -> tuple[date, date]:
    match = MONTH.fullmatch(month)
    if not match:
        raise InvalidInput("month", f"{month!r} is not a month like 2026-12")
    year, number = int(match.group(1)), int(match.group(2))
    return date(year, number, 1), date(year, number, calendar.monthrange(year, number)[1])
