"""Usage through the API: a month, one line a day, as JSON and as the CSV the CLI exports;
the caller's own tenant's figures only."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from fastapi.testclient import TestClient

from api.services import Services
from domain.caller import Caller
from domain.tenant import Role
from resources.database import tenant_scope, unit_of_work
from tests.integration.api.conftest import ApiTenant
from tests.integration.api.support import refused

USAGE = "/api/v1/usage"


def _record(wiring: Services, tenant: str, tokens_in: int) -> None:
    with tenant_scope(tenant), unit_of_work(wiring.database) as uow:
        uow.usage.record(
            date(2026, 2, 3),
            sessions=2,
            tokens_in=tokens_in,
            tokens_out=5,
            cost_usd=Decimal("0.25"),
        )


def test_a_month_as_json_and_as_the_clis_csv(
    client: TestClient, wiring: Services, tenant_a: ApiTenant, tenant_b: ApiTenant
) -> None:
    _record(wiring, tenant_a.slug, 100)
    _record(wiring, tenant_b.slug, 999)
    admin = tenant_a.headers(Role.ADMIN)
    month = client.get(USAGE, params={"month": "2026-02"}, headers=admin).json()
    assert month["month"] == "2026-02" and len(month["days"]) == 28
    third = month["days"][2]
    assert (third["day"], third["sessions"], third["tokens_in"], third["total_tokens"]) == (
        "2026-02-03",
        2,
        100,
        105,
    )
    assert Decimal(str(third["cost_usd"])) == Decimal("0.25")
    assert sum(day["tokens_in"] for day in month["days"]) == 100  # never B's 999
    csv = client.get(f"{USAGE}/export", params={"month": "2026-02"}, headers=admin)
    assert csv.headers["content-type"].startswith("text/csv")
    assert "attachment" in csv.headers["content-disposition"]
    expected = wiring.factory.usage().export_csv(Caller.operator(), tenant_a.slug, "2026-02")
    assert csv.text == expected
    assert "999" not in csv.text


def test_a_malformed_or_missing_month_is_refused(client: TestClient, tenant_a: ApiTenant) -> None:
    admin = tenant_a.headers(Role.ADMIN)
    for url in (USAGE, f"{USAGE}/export"):
        for params in ({"month": "2026-13"}, {"month": "0000-01"}, {"month": "Feb"}, {}):
            refused(client.get(url, params=params, headers=admin), 422, "invalid_request")
