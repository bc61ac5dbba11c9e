"""Migration 0005 turns the agents' `active` flag into the lifecycle status, both ways, on a
clean SQLite file and a clean PostgreSQL database: inactive agents become INACTIVE, the others
ACTIVE; a downgrade gives back `active` = (status is ACTIVE)."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from resources.database.migrate import downgrade, upgrade
from tests.integration.database.support import BACKENDS

BEFORE = "0004"
INSERT_AGENT = (
    "INSERT INTO agents (id, tenant_id, name, server_url, opencode_agent, capabilities, capacity,"
    " active, performance, version, created_at) VALUES (:id, 'acme', :id, 'http://127.0.0.1:1',"
    " 'build', '[]', 5, :active, '{}', 1, CURRENT_TIMESTAMP)"
)


@pytest.fixture(params=BACKENDS)
def clean_url(request: pytest.FixtureRequest) -> str:
    fixture = "fresh_postgres_url" if request.param == "postgresql" else "sqlite_url"
    return request.getfixturevalue(fixture)


def test_the_active_flag_becomes_the_status_and_back(clean_url: str) -> None:
    upgrade(clean_url, BEFORE)
    engine = create_engine(clean_url)  # the server's own user: row-level security lets it in
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO tenants (slug, name, active, max_concurrent_sessions,"
                    " monthly_token_budget, created_at) VALUES ('acme', 'Acme', true,"
                    " 10, 1000, CURRENT_TIMESTAMP)"
                )
            )
            connection.execute(
                text(INSERT_AGENT),
                [
                    {"id": "AGENT-ON", "active": True},
                    {"id": "AGENT-OFF", "active": False},
                ],
            )

        upgrade(clean_url)
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT id, status FROM agents ORDER BY id"))
            assert rows.all() == [("AGENT-OFF", "INACTIVE"), ("AGENT-ON", "ACTIVE")]
            connection.execute(text("UPDATE agents SET status = 'DRAINING' WHERE id = 'AGENT-ON'"))
            connection.commit()

        downgrade(clean_url, BEFORE)
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT id, active FROM agents ORDER BY id"))
            assert [(agent, bool(active)) for agent, active in rows] == [
                ("AGENT-OFF", False),
                ("AGENT-ON", False),  # draining takes no new sessions: not active
            ]
    finally:
        engine.dispose()
