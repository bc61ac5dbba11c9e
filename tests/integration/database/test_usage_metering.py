"""Usage per tenant per day: reconciled from the histories, exported a line per day."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from domain.caller import Caller
from domain.errors import InvalidInput, PermissionDenied, TenantMismatch
from domain.session import Session, SessionStatus
from domain.tenant import Role
from resources.database import Database, tenant_scope, unit_of_work
from services.usage_metering import UsageMetering
from tests.integration.database.support import BACKENDS, new_tenant

pytestmark = pytest.mark.parametrize("database", BACKENDS, indirect=True)
DAY = date(2026, 11, 3)
NOON = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)


def run_session(db: Database, tenant: str, steps: list[tuple[SessionStatus, datetime]]) -> str:
    session = Session(tenant_id=tenant, title="t", initial_prompt="p")
    with tenant_scope(tenant), unit_of_work(db) as uow:
        uow.sessions.add(session)
    for status, at in steps:
        with tenant_scope(tenant), unit_of_work(db) as uow:
            current = uow.sessions.get(session.id)
            if status is SessionStatus.PENDING:
                event = current.retry(at=at)
            else:
                event = current.transition_to(status, "test", at=at)
            uow.sessions.save_transition(current, event)
    return session.id


def test_a_days_sessions_and_agent_time_come_from_the_history(database):
    tenant = new_tenant(database, "acme")
    s, r, c, f = (
        SessionStatus.QUEUED,
        SessionStatus.RUNNING,
        SessionStatus.COMPLETED,
        SessionStatus.FAILED,
    )
    minute = timedelta(minutes=1)
    run_session(database, tenant, [(s, NOON), (r, NOON), (c, NOON + 10 * minute)])
    # failed once (5 min), retried and completed (3 min), both the same day
    retry = [(s, NOON), (r, NOON), (f, NOON + 5 * minute), (SessionStatus.PENDING, NOON)]
    run_session(database, tenant, [*retry, (s, NOON), (r, NOON), (c, NOON + 3 * minute)])
    # started the evening before, ended at 00:30: only the half hour is this day's
    evening = datetime(2026, 11, 2, 23, 0, tzinfo=UTC)
    midnight = datetime(2026, 11, 3, 0, 0, tzinfo=UTC)
    run_session(database, tenant, [(s, evening), (r, evening), (c, midnight + 30 * minute)])
    # cancelled while waiting: never on an agent
    run_session(database, tenant, [(SessionStatus.CANCELLED, NOON)])
    # another day
    run_session(database, tenant, [(s, NOON), (r, NOON), (c, NOON + timedelta(days=1))])
    with tenant_scope(tenant), unit_of_work(database) as uow:
        uow.usage.record(DAY, sessions=9, tokens_in=100, tokens_out=50, cost_usd=Decimal("0.5"))

    usage = UsageMetering(database).reconcile_day(Caller.operator(), tenant, DAY)

    assert usage.sessions == 3
    assert usage.agent_seconds == pytest.approx((10 + 5 + 3 + 30) * 60)
    assert (usage.tokens_in, usage.tokens_out) == (100, 50)  # the live counters stay


def test_a_month_exports_a_line_per_day_and_other_tenants_cannot(database):
    tenant, other = new_tenant(database, "acme"), new_tenant(database, "globex")
    with tenant_scope(tenant), unit_of_work(database) as uow:
        uow.usage.record(DAY, sessions=2, tokens_in=10, tokens_out=5, cost_usd=Decimal("0.25"))
    metering = UsageMetering(database)
    lines = metering.export_csv(Caller.for_tenant(tenant, Role.ADMIN), tenant, "2026-11")
    rows = lines.splitlines()
    assert rows[0].startswith("day,sessions,tokens_in")
    assert len(rows) == 1 + 30
    assert rows[3] == "2026-11-03,2,10,5,0,15,0.250000,0.00"
    with pytest.raises(TenantMismatch):
        metering.export_csv(Caller.for_tenant(other, Role.ADMIN), tenant, "2026-11")
    with pytest.raises(PermissionDenied):
        metering.export_csv(Caller.for_tenant(tenant, Role.MEMBER), tenant, "2026-11")
    with pytest.raises(InvalidInput, match="month"):
        metering.export_csv(Caller.operator(), tenant, "2026-13")
