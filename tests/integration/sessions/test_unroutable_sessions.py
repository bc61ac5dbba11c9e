"""Sessions no agent of their tenant can serve, on PostgreSQL and SQLite.

Contract: a PENDING session that needs a capability no active agent of its tenant offers is not
claimed (it holds no slot), and the tenant's other sessions are claimed instead; it says why
(its status reason, one `session.unroutable` event however often the dispatcher looks); it is
claimable again once an agent offers what it needs; after the bounded wait it ends FAILED with
that reason and is not retried. A claimed (QUEUED) session whose agents went away is handed
back to PENDING by `UnroutableSessions.release`, giving its slot back; one an agent can still
serve is not.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from domain.agent import Agent
from domain.caller import Caller
from domain.clock import utcnow
from domain.session import Priority, SessionStatus
from domain.tenant import Tenant
from resources.database import Database, tenant_scope, unit_of_work
from services.session_service import SessionService, SubmitSession
from services.unroutable import UnroutableSessions

LEASE = timedelta(minutes=5)
WAIT = timedelta(minutes=10)
S = SessionStatus


def new_tenant(database: Database, limit: int = 10) -> str:
    slug = f"t-{uuid.uuid4().hex[:10]}"
    with unit_of_work(database) as uow:
        uow.tenants.add(Tenant(slug=slug, name=slug, max_concurrent_sessions=limit))
    return slug


def add_agent(database: Database, tenant: str, *capabilities: str) -> Agent:
    agent = Agent(
        tenant_id=tenant,
        name=f"agent-{uuid.uuid4().hex[:6]}",
        server_url="http://127.0.0.1:9",
        capabilities=list(capabilities),
    )
    with tenant_scope(tenant), unit_of_work(database) as uow:
        uow.agents.add(agent)
    return agent


def deactivate(database: Database, tenant: str, agent: Agent) -> None:
    with tenant_scope(tenant), unit_of_work(database) as uow:
        current = uow.agents.get(agent.id)
        current.active = False
        uow.agents.save(current)


def submit(service: SessionService, tenant: str, *needs: str, priority=Priority.MEDIUM) -> str:
    request = SubmitSession(
        title="work", prompt="Do it.", required_capabilities=list(needs), priority=priority
    )
    return service.submit(Caller.operator(), tenant, request).id


def at(moment: datetime, database: Database) -> SessionService:
    return SessionService(database, clock=lambda: moment)


def unroutable(database: Database, moment: datetime | None = None) -> UnroutableSessions:
    return UnroutableSessions(database, clock=(lambda: moment) if moment else utcnow)


def claimed_ids(service: SessionService, tenant: str, owner: str = "wave-1") -> list[str]:
    claim = service.claim_pending(tenant, 10, LEASE, lambda sessions: owner)
    return [session.id for session in claim.sessions]


def unroutable_events(service: SessionService, tenant: str, session_id: str) -> list[str]:
    return [
        event.reason
        for event in service.events(Caller.operator(), tenant, session_id)
        if event.event_type == "session.unroutable"
    ]


def test_a_session_no_agent_can_serve_holds_no_slot_and_the_others_are_claimed(
    database: Database,
) -> None:
    tenant = new_tenant(database, limit=1)
    add_agent(database, tenant, "python")
    service = SessionService(database)
    rust = submit(service, tenant, "rust", priority=Priority.CRITICAL)
    python = submit(service, tenant, "python", priority=Priority.LOW)

    assert claimed_ids(service, tenant) == [python]

    waiting = service.get(Caller.operator(), tenant, rust)
    assert waiting.status is S.PENDING
    assert waiting.status_reason == "no agent offers rust"
    assert waiting.unroutable_since is not None
    with tenant_scope(tenant), unit_of_work(database) as uow:
        assert uow.sessions.count_active() == 1


def test_the_reason_is_recorded_once_however_often_the_dispatcher_looks(
    database: Database,
) -> None:
    tenant = new_tenant(database)
    add_agent(database, tenant, "python")
    service = SessionService(database)
    rust = submit(service, tenant, "rust")

    for _ in range(3):
        assert claimed_ids(service, tenant) == []
        unroutable(database).sweep(tenant, WAIT)

    assert unroutable_events(service, tenant, rust) == ["no agent offers rust"]


def test_after_the_wait_it_fails_with_the_reason_and_is_not_retried(database: Database) -> None:
    tenant = new_tenant(database)
    add_agent(database, tenant, "python")
    start = utcnow()
    rust = submit(at(start, database), tenant, "rust")
    assert claimed_ids(at(start, database), tenant) == []

    assert unroutable(database, start + WAIT - timedelta(seconds=1)).sweep(tenant, WAIT) == []
    assert at(start, database).get(Caller.operator(), tenant, rust).status is S.PENDING

    ended = unroutable(database, start + WAIT).sweep(tenant, WAIT)

    assert [(s.id, s.status, s.status_reason) for s in ended] == [
        (rust, S.FAILED, "no agent offers rust")
    ]
    service = at(start + WAIT + timedelta(hours=1), database)
    assert service.retry_due(tenant) == []
    failed = service.get(Caller.operator(), tenant, rust)
    assert failed.status is S.FAILED and failed.retry_count == 0
    assert failed.error == {"reason": "no agent offers rust", "retryable": False}
    assert failed.unroutable_since is None


def test_an_agent_that_offers_it_makes_it_claimable_again(database: Database) -> None:
    tenant = new_tenant(database)
    add_agent(database, tenant, "python")
    service = SessionService(database)
    rust = submit(service, tenant, "rust")
    assert claimed_ids(service, tenant) == []

    add_agent(database, tenant, "rust", "python")
    changed = unroutable(database).sweep(tenant, WAIT)

    assert [(s.id, s.status, s.unroutable_since) for s in changed] == [(rust, S.PENDING, None)]
    assert claimed_ids(service, tenant) == [rust]


def test_a_claimed_session_whose_agents_went_away_gives_its_slot_back(database: Database) -> None:
    tenant = new_tenant(database, limit=1)
    agent = add_agent(database, tenant, "rust")
    service = SessionService(database)
    rust = submit(service, tenant, "rust")
    assert claimed_ids(service, tenant, owner="wave-1") == [rust]
    deactivate(database, tenant, agent)

    released = unroutable(database).release(tenant, rust, "wave-1")

    assert released is not None
    assert (released.status, released.status_reason) == (S.PENDING, "no agent offers rust")
    assert released.lease_owner is None and released.retry_count == 0
    stored = service.get(Caller.operator(), tenant, rust)
    assert stored.status is S.PENDING and stored.unroutable_since is not None
    changes = [
        (e.old_status, e.new_status) for e in service.events(Caller.operator(), tenant, rust)
    ]
    assert changes[-1] == ("QUEUED", "PENDING")
    with tenant_scope(tenant), unit_of_work(database) as uow:
        assert uow.sessions.count_active() == 0
    assert claimed_ids(service, tenant) == []  # it waits for an agent, not for a wave


def test_a_claimed_session_an_agent_can_still_serve_is_not_released(database: Database) -> None:
    tenant = new_tenant(database)
    add_agent(database, tenant, "rust")
    service = SessionService(database)
    rust = submit(service, tenant, "rust")
    assert claimed_ids(service, tenant, owner="wave-1") == [rust]

    assert unroutable(database).release(tenant, rust, "wave-1") is None
    assert unroutable(database).release(tenant, rust, "wave-2") is None  # nor by another wave

    stored = service.get(Caller.operator(), tenant, rust)
    assert (stored.status, stored.lease_owner) == (S.QUEUED, "wave-1")


def test_a_launch_naming_an_unroutable_session_leaves_it_pending(database: Database) -> None:
    tenant = new_tenant(database)
    service = SessionService(database)
    rust = submit(service, tenant, "rust")

    session = service.claim(tenant, rust, "wave-1", LEASE)

    assert (session.status, session.status_reason) == (S.PENDING, "no agent offers rust")
    assert service.get(Caller.operator(), tenant, rust).unroutable_since is not None


def test_what_no_agent_could_serve_is_named_at_submit(database: Database) -> None:
    tenant = new_tenant(database)
    add_agent(database, tenant, "python")
    service = SessionService(database)
    rust = submit(service, tenant, "rust")
    python = submit(service, tenant, "python")

    assert unroutable(database).unserved(tenant, rust) == {rust: "no agent offers rust"}
    assert unroutable(database).unserved(tenant, python) == {}


def test_a_claimed_session_whose_wave_died_and_agents_went_away_is_handed_back_not_re_leased(
    database: Database,
) -> None:
    tenant = new_tenant(database, limit=1)
    agent = add_agent(database, tenant, "rust")
    start = utcnow()
    rust = submit(at(start, database), tenant, "rust")
    python = submit(at(start, database), tenant)
    assert claimed_ids(at(start, database), tenant) == [rust]  # the one slot
    deactivate(database, tenant, agent)
    later = at(start + LEASE + timedelta(seconds=1), database)

    adopted = later.lease_unsupervised(tenant, 10, LEASE, lambda sessions: "wave-2")

    assert adopted.sessions == []
    stored = later.get(Caller.operator(), tenant, rust)
    assert (stored.status, stored.status_reason) == (S.PENDING, "no agent offers rust")
    assert stored.lease_owner is None and stored.unroutable_since is not None
    assert claimed_ids(later, tenant, owner="wave-3") == [python]  # its slot went to the other


def test_a_set_aside_session_cancelled_is_set_aside_no_more(database: Database) -> None:
    tenant = new_tenant(database)
    service = SessionService(database)
    rust = submit(service, tenant, "rust")
    assert claimed_ids(service, tenant) == []

    service.cancel(Caller.operator(), tenant, rust)

    assert service.get(Caller.operator(), tenant, rust).unroutable_since is None
    assert unroutable(database, utcnow() + WAIT).sweep(tenant, WAIT) == []
    assert service.get(Caller.operator(), tenant, rust).status is S.CANCELLED
