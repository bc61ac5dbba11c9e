"""A wave's look for work (its top-up round, every second while it has room) costs one
transaction when its tenant has nothing for it: most rounds of a long-lived wave find nothing,
and each was two (its unsupervised sessions, then its due ones; ~4.6 % of a run worker's CPU in
the 300-session burst's profile)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from domain.caller import Caller
from domain.session import SessionStatus
from domain.tenant import Tenant
from resources.database import tenant_scope, unit_of_work
from services.session_service import SubmitSession
from services.top_up import claim_next_for
from tests.unit.supervision.conftest import LEASE, OWNER, TENANT, World

OTHER = "globex"


@contextmanager
def transactions_counted(world: World) -> Iterator[list[int]]:
    begun: list[int] = []

    def count(_connection: Any) -> None:
        begun.append(1)

    event.listen(world.database.engine, "begin", count)
    try:
        yield begun
    finally:
        event.remove(world.database.engine, "begin", count)


def test_a_look_that_finds_nothing_is_one_transaction(world: World) -> None:
    claim = claim_next_for(world.service, TENANT, OWNER, LEASE)
    with transactions_counted(world) as begun:
        assert claim(5, 7200.0) == []
    assert len(begun) == 1


def test_a_look_still_takes_a_due_session_and_one_whose_wave_died(world: World) -> None:
    due = world.submit("due", claim=False)
    orphaned = world.submit("its wave died")  # claimed: QUEUED
    with tenant_scope(TENANT), unit_of_work(world.database) as uow:
        session = uow.sessions.get(orphaned)
        assert session.status is SessionStatus.QUEUED
        session.lease_owner = "a-dead-wave"
        session.lease_expires_at = world.clock() - LEASE
        uow.sessions.save(session)
    claim = claim_next_for(world.service, TENANT, OWNER, LEASE)
    assert sorted(claim(5, 7200.0)) == sorted([due, orphaned])  # its max duration fits in 2 h
    with tenant_scope(TENANT), unit_of_work(world.database) as uow:
        owners = {uow.sessions.get(s).lease_owner for s in (due, orphaned)}
    assert owners == {OWNER}


def test_another_tenants_work_is_neither_seen_nor_taken_by_the_look(world: World) -> None:
    """A hostile neighbour's due session and its orphaned one (an expired lease) must not make
    this tenant's look say "work" nor end up leased to this tenant's wave."""
    with unit_of_work(world.database) as uow:
        uow.tenants.add(Tenant(slug=OTHER, name="Other"))
    other_due = world.service.submit(
        Caller.operator(), OTHER, SubmitSession(title="theirs", prompt="theirs")
    ).id
    other_orphan = world.service.submit(
        Caller.operator(), OTHER, SubmitSession(title="theirs too", prompt="theirs too")
    ).id
    world.service.claim(OTHER, other_orphan, "their-dead-wave", LEASE)
    with tenant_scope(OTHER), unit_of_work(world.database) as uow:
        session = uow.sessions.get(other_orphan)
        session.lease_expires_at = world.clock() - LEASE
        uow.sessions.save(session)

    assert world.service.anything_for_a_wave(TENANT, 7200.0) is False
    assert claim_next_for(world.service, TENANT, OWNER, LEASE)(5, 7200.0) == []
    with tenant_scope(OTHER), unit_of_work(world.database) as uow:
        assert uow.sessions.get(other_due).status is SessionStatus.PENDING
        assert uow.sessions.get(other_orphan).lease_owner == "their-dead-wave"
    assert world.service.anything_for_a_wave(OTHER, 7200.0) is True  # its own look sees them
