"""Migration 0011 on agents written before it, on a clean SQLite file and PostgreSQL database:
each server is claimed by the tenant whose agent registered it first; another tenant's agent on
it, and an agent whose password variable lacks the prefix, become INACTIVE; the others stay as
they were. A downgrade removes the claims and secrets tables (and, on PostgreSQL, the guard on
`tenants`), and the upgrade runs again."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, inspect, text

from resources.database.migrate import downgrade, upgrade
from tests.integration.database.support import BACKENDS

BEFORE = "0010"
INSERT_TENANT = (
    "INSERT INTO tenants (slug, name, active, max_concurrent_sessions, monthly_token_budget,"
    " created_at) VALUES (:slug, :slug, true, 10, 1000, CURRENT_TIMESTAMP)"
)
INSERT_AGENT = (
    "INSERT INTO agents (id, tenant_id, name, server_url, password_env, opencode_agent,"
    " capabilities, capacity, status, performance, version, created_at) VALUES (:id, :tenant,"
    " :id, :url, :password_env, 'build', '[]', 5, 'ACTIVE', '{}', 1, :created_at)"
)
AGENTS = [  # oldest first
    ("AGENT-A1", "acme", "http://127.0.0.1:4096", "INDORCH_AGENT_PASSWORD_A", "2026-01-01"),
    ("AGENT-G1", "globex", "http://LOCALHOST:4096/", None, "2026-01-02"),
    ("AGENT-A2", "acme", "http://localhost:4096", None, "2026-01-03"),
    ("AGENT-G2", "globex", "http://127.0.0.1:5000", "DATABASE_URL", "2026-01-04"),
    ("AGENT-G3", "globex", "https://globex.example.com", None, "2026-01-05"),
]


@pytest.fixture(params=BACKENDS)
def clean_url(request: pytest.FixtureRequest) -> str:
    fixture = "fresh_postgres_url" if request.param == "postgresql" else "sqlite_url"
    return request.getfixturevalue(fixture)


def test_existing_agents_claim_their_servers_and_the_unsafe_ones_are_switched_off(
    clean_url: str,
) -> None:
    upgrade(clean_url, BEFORE)
    engine = create_engine(clean_url)  # the server's own user: row-level security lets it in
    try:
        with engine.begin() as connection:
            connection.execute(text(INSERT_TENANT), [{"slug": "acme"}, {"slug": "globex"}])
            connection.execute(
                text(INSERT_AGENT),
                [
                    {
                        "id": i,
                        "tenant": t,
                        "url": u,
                        "password_env": p,
                        "created_at": c + " 00:00:00",
                    }
                    for i, t, u, p, c in AGENTS
                ],
            )

        upgrade(clean_url)
        with engine.connect() as connection:
            statuses = dict(connection.execute(text("SELECT id, status FROM agents")).all())
            claims = connection.execute(
                text("SELECT server_key, tenant_id FROM agent_server_claims ORDER BY server_key")
            ).all()
        assert statuses == {
            "AGENT-A1": "ACTIVE",
            "AGENT-G1": "INACTIVE",  # acme's server
            "AGENT-A2": "ACTIVE",  # acme's own server, spelled otherwise
            "AGENT-G2": "INACTIVE",  # DATABASE_URL as its password
            "AGENT-G3": "ACTIVE",
        }
        assert claims == [
            ("globex.example.com:443", "globex"),
            ("loopback:4096", "acme"),
            ("loopback:5000", "globex"),
        ]

        downgrade(clean_url, BEFORE)
        tables = set(inspect(engine).get_table_names())
        assert {"agent_server_claims", "tenant_secrets"}.isdisjoint(tables)
        if engine.dialect.name == "postgresql":
            with engine.connect() as connection:
                guarded = connection.execute(
                    text("SELECT relrowsecurity FROM pg_class WHERE relname = 'tenants'")
                ).scalar_one()
            assert guarded is False
        upgrade(clean_url)
    finally:
        engine.dispose()
