"""One runtime serves one tenant: a server another tenant's agent holds is refused, however its
URL is spelled, even when two tenants register it at the same moment; nothing is written and the
refusal names neither the other tenant nor its agent. On SQLite and on PostgreSQL (where each
tenant is blind to the other's claims under row-level security)."""

from __future__ import annotations

import threading

import pytest

from domain.agent import Agent, AgentStatus
from domain.caller import Caller
from domain.errors import InvalidInput, ServerInUse
from domain.tenant import Role
from resources.database import Database, tenant_scope, unit_of_work
from services.agent_registry import AgentRegistry
from services.tenant_admin import TenantAdmin
from tests.integration.database.support import new_tenant

OPERATOR = Caller.operator()


def agent(tenant: str, url: str, name: str = "builder", **fields: object) -> Agent:
    return Agent(tenant_id=tenant, name=name, server_url=url, **fields)  # type: ignore[arg-type]


def names(registry: AgentRegistry, tenant: str) -> list[str]:
    return [view.agent.name for view in registry.list(OPERATOR, tenant)]


@pytest.fixture
def port(database: Database) -> int:
    """A port no other test of the module uses (the module shares one database)."""
    port.counter = getattr(port, "counter", 20000) + 1  # type: ignore[attr-defined]
    return port.counter  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "spelling",
    [
        "http://127.0.0.1:{port}",
        "http://127.0.0.1:{port}/",
        "HTTP://LOCALHOST:{port}",
        "http://[::1]:{port}/x",
        "http://127.1:{port}",
        "https://0.0.0.0:{port}",
    ],
)
def test_another_tenant_cannot_register_a_server_in_use_however_spelled(
    database: Database, port: int, spelling: str
) -> None:
    a, b = new_tenant(database, "a"), new_tenant(database, "b")
    checked: list[str] = []
    registry = AgentRegistry(database, health_check=lambda agent: checked.append(agent.name))
    registry.register(Caller.for_tenant(a, Role.LEAD), agent(a, f"http://127.0.0.1:{port}"))

    with pytest.raises(ServerInUse) as refused:
        registry.register(
            Caller.for_tenant(b, Role.ADMIN), agent(b, spelling.format(port=port), "intruder")
        )

    message = str(refused.value)
    assert "in use by another tenant" in message
    assert a not in message and "builder" not in message
    assert names(registry, b) == []
    assert checked == ["builder"]  # the server held by A was never called on B's behalf


def test_one_tenant_may_put_several_agents_on_its_own_server(database: Database, port: int) -> None:
    a = new_tenant(database, "a")
    registry = AgentRegistry(database)
    registry.register(OPERATOR, agent(a, f"http://127.0.0.1:{port}", "build"), check=False)
    registry.register(OPERATOR, agent(a, f"http://localhost:{port}/", "plan"), check=False)
    assert names(registry, a) == ["build", "plan"]


def test_the_server_is_free_again_once_its_tenants_last_agent_is_removed(
    database: Database, port: int
) -> None:
    a, b = new_tenant(database, "a"), new_tenant(database, "b")
    registry, url = AgentRegistry(database), f"http://127.0.0.1:{port}"
    first = registry.register(OPERATOR, agent(a, url, "one"), check=False)
    second = registry.register(OPERATOR, agent(a, url, "two"), check=False)
    registry.remove(OPERATOR, a, first.id)
    with pytest.raises(ServerInUse):  # A still has an agent there
        registry.register(OPERATOR, agent(b, url), check=False)
    registry.remove(OPERATOR, a, second.id)
    registry.register(OPERATOR, agent(b, url), check=False)
    assert names(registry, b) == ["builder"]
    with pytest.raises(ServerInUse):
        registry.register(OPERATOR, agent(a, url, "back"), check=False)


def test_an_agent_on_a_server_another_tenant_holds_cannot_be_activated(
    database: Database, port: int
) -> None:
    """An agent written before the rule (the migration deactivates it) stays inactive."""
    a, b = new_tenant(database, "a"), new_tenant(database, "b")
    registry, url = AgentRegistry(database), f"http://127.0.0.1:{port}"
    registry.register(OPERATOR, agent(a, url), check=False)
    legacy = agent(b, url, "legacy", status=AgentStatus.INACTIVE)
    with tenant_scope(b), unit_of_work(database) as uow:  # below the service: no claim taken
        uow.agents.add(legacy)
    with pytest.raises(ServerInUse):
        registry.activate(OPERATOR, b, legacy.id)
    assert registry.get(OPERATOR, b, legacy.id).agent.status is AgentStatus.INACTIVE


def test_two_tenants_registering_one_server_at_once_cannot_both_win(
    database: Database, port: int
) -> None:
    """Both pass the early check (the health checks wait for each other), then both write: the
    claim's key lets exactly one through."""
    a, b = new_tenant(database, "a"), new_tenant(database, "b")
    both_checked = threading.Barrier(2, timeout=30)
    registry = AgentRegistry(database, health_check=lambda _agent: both_checked.wait())
    outcomes: dict[str, BaseException | None] = {}

    def register(tenant: str) -> None:
        try:
            registry.register(OPERATOR, agent(tenant, f"http://127.0.0.1:{port}"))
            outcomes[tenant] = None
        except BaseException as error:  # judged below
            outcomes[tenant] = error

    threads = [threading.Thread(target=register, args=(tenant,)) for tenant in (a, b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    winners = [tenant for tenant, error in outcomes.items() if error is None]
    losers = [error for error in outcomes.values() if error is not None]
    assert len(winners) == 1 and len(losers) == 1, outcomes
    assert isinstance(losers[0], ServerInUse)
    loser = b if winners == [a] else a
    assert names(registry, loser) == []
    assert names(registry, winners[0]) == ["builder"]


@pytest.mark.parametrize(
    ("url", "password_env", "field"),
    [
        ("ftp://127.0.0.1:{port}", None, "server_url"),
        ("http://user:secret@127.0.0.1:{port}", None, "server_url"),
        ("http://agents.example.com:{port}", None, "server_url"),
        ("http://127.0.0.1:{port}", "DATABASE_URL", "password-env"),
        ("http://127.0.0.1:{port}", "OPENAI_API_KEY", "password-env"),
    ],
)
def test_unsafe_urls_and_password_variables_are_refused_and_nothing_is_written(
    database: Database, port: int, url: str, password_env: str | None, field: str
) -> None:
    a = new_tenant(database, "a")
    called: list[str] = []
    registry = AgentRegistry(
        database, health_check=lambda agent: called.append(agent.name), allow_plain_http=False
    )
    with pytest.raises(InvalidInput) as refused:  # by the model or by the registry
        registry.register(OPERATOR, agent(a, url.format(port=port), password_env=password_env))
    assert refused.value.field == field
    assert "secret" not in str(refused.value)
    assert names(registry, a) == [] and called == []


def test_the_operator_may_allow_plain_http_to_other_hosts(database: Database, port: int) -> None:
    a = new_tenant(database, "a")
    registry = AgentRegistry(database, allow_plain_http=True)
    registry.register(OPERATOR, agent(a, f"http://10.0.0.9:{port}"), check=False)
    assert names(registry, a) == ["builder"]


def test_a_deleted_tenants_servers_are_free_for_another_tenant(
    database: Database, port: int
) -> None:
    a, b = new_tenant(database, "a"), new_tenant(database, "b")
    registry, url = AgentRegistry(database), f"http://127.0.0.1:{port}"
    registry.register(OPERATOR, agent(a, url), check=False)
    with pytest.raises(ServerInUse):
        registry.register(OPERATOR, agent(b, url), check=False)
    TenantAdmin(database).delete(OPERATOR, a)
    registry.register(OPERATOR, agent(b, url), check=False)
    assert names(registry, b) == ["builder"]
