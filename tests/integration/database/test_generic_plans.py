"""The plans PostgreSQL keeps for a submission's statements hold even when it made them on an
empty, never-analysed table.

psycopg prepares a statement run five times on a connection; PostgreSQL then plans it once,
generically, with what it knows then, and keeps that plan for the connection's life. Planned on a
new table, the idempotency-key look-up of every submission chose the lone `tenant_id` index and
then filtered the tenant's sessions one by one (9,000 rows read per submission after 9,000
submissions on a server without autovacuum): the cost of a submission grew with the tenant's
history. The key is now checked by the unique index on insert (a replay's session looked up only
then), and migration 0017 drops the lone `tenant_id` indexes of sessions and session events (every
other index of theirs leads with `tenant_id`).
"""

from __future__ import annotations

import datetime

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import psycopg
from sqlalchemy.engine import Engine

from resources.database.repositories.sessions import _submission_context_query

DOLLAR = psycopg.dialect(paramstyle="numeric_dollar")  # with casts: $1::VARCHAR


def _literal(value: object) -> str:
    """A test value as SQL (EXECUTE's arguments would have no type as bound parameters)."""
    return str(value) if isinstance(value, int) else f"'{value}'"


def _generic_plan(engine: Engine, statement, values: dict) -> str:
    compiled = statement.compile(dialect=DOLLAR)
    names = list(compiled.positiontup)
    params = {**compiled.params, **values}
    with engine.connect() as connection:
        connection.execute(text("SET plan_cache_mode = force_generic_plan"))
        connection.exec_driver_sql(f"PREPARE hot AS {compiled.string}")
        arguments = ", ".join(_literal(params[name]) for name in names)
        rows = connection.exec_driver_sql(f"EXPLAIN EXECUTE hot({arguments})")
        plan = "\n".join(row[0] for row in rows)
        connection.exec_driver_sql("DEALLOCATE hot")
        connection.rollback()
    return plan


def test_the_submission_reads_no_session_in_its_plan_made_on_empty_tables(
    pg_admin_engine: Engine,
) -> None:
    """The idempotency key is checked by the unique index on insert, which no plan chooses."""
    plan = _generic_plan(
        pg_admin_engine,
        _submission_context_query(),
        {"tenant": "t", "since": datetime.date(2026, 12, 1)},
    )
    assert " on sessions" not in plan, plan
