"""`indorch usage export`: a month as CSV, a line per day; bad input refused in one line."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from resources.database import Database, tenant_scope, unit_of_work
from tests.integration.cli.support import ok, refused


def test_a_month_is_exported_a_line_per_day(db_url, tmp_path):
    database = Database(db_url)
    with tenant_scope("acme"), unit_of_work(database) as uow:
        uow.usage.record(
            date(2026, 2, 14), sessions=3, tokens_in=40, tokens_out=2, cost_usd=Decimal("0.1")
        )
    database.dispose()
    rows = ok(db_url, "usage", "export", "--tenant", "acme", "--month", "2026-02").splitlines()
    assert len(rows) == 1 + 28
    assert rows[14] == "2026-02-14,3,40,2,0,42,0.100000,0.00"
    target = tmp_path / "feb.csv"
    ok(db_url, "usage", "export", "-t", "acme", "--month", "2026-02", "-o", str(target))
    assert target.read_text().splitlines() == rows


def test_a_bad_month_or_an_unknown_tenant_is_refused(db_url):
    assert "month" in refused(db_url, "usage", "export", "-t", "acme", "--month", "2026-2")
    # A year no calendar has (found by the API's schemathesis run: it crashed, exit 1).
    assert "month" in refused(db_url, "usage", "export", "-t", "acme", "--month", "0000-01")
    assert "nobody" in refused(db_url, "usage", "export", "-t", "nobody", "--month", "2026-02")
