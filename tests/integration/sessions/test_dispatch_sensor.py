"""The dispatch sensor and long-lived waves: while a tenant has a live wave run (which takes on
its tenant's new sessions itself), the sensor claims only the sessions left behind; a tenant
without one gets new waves at once. A session no agent of its tenant can serve gets no wave: it
waits PENDING, is claimed in the tick an agent offers what it needs, and ends FAILED after the
configured wait. Real sensor evaluation on a real SQLite database."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import timedelta

import dagster as dg
import pytest

from domain.agent import Agent
from domain.caller import Caller
from domain.clock import utcnow
from domain.session import SessionStatus
from domain.tenant import Tenant
from instance_plugins.dagster_internals import create_run_for_test
from orchestrator_defs.sensor_evaluation import sensor_context
from resources.dagster_partitions import tenant_partitions
from resources.database import Database, tenant_scope, unit_of_work
from resources.database_resource import DatabaseResource
from resources.redis.resource import RedisResource
from resources.supervision_config import SupervisionConfig
from sensors.dispatch import dispatch_sensor
from services.session_service import SessionService, SubmitSession
from services.top_up import claim_next_for
from services.waves import JOB_NAME, TENANT_TAG

SUPERVISION = SupervisionConfig(left_behind_seconds=10.0)


@pytest.fixture
def database(migrated_sqlite_url: str) -> Iterator[Database]:
    database = Database(migrated_sqlite_url)
    yield database
    database.dispose()


def _tenant(database: Database) -> str:
    slug = f"t-{uuid.uuid4().hex[:8]}"
    with unit_of_work(database) as uow:
        uow.tenants.add(Tenant(slug=slug, name=slug, max_concurrent_sessions=50))
    return slug


def _submit(database: Database, tenant: str, seconds_ago: float, *needs: str) -> str:
    at = utcnow() - timedelta(seconds=seconds_ago)
    service = SessionService(database, clock=lambda: at)
    request = SubmitSession(title="work", prompt="Do it.", required_capabilities=list(needs))
    return service.submit(Caller.operator(), tenant, request).id


def _agent(database: Database, tenant: str, *capabilities: str) -> None:
    agent = Agent(
        tenant_id=tenant,
        name=f"agent-{'-'.join(capabilities)}",
        server_url="http://127.0.0.1:9",
        capabilities=list(capabilities),
    )
    with tenant_scope(tenant), unit_of_work(database) as uow:
        uow.agents.add(agent)


def _tick(
    instance: dg.DagsterInstance, database: Database, supervision: SupervisionConfig = SUPERVISION
) -> dg.SensorResult:
    resources = {
        "database": DatabaseResource(url=str(database.url)),
        "supervision": supervision,
        "redis": RedisResource(url=None),
    }
    with sensor_context(instance, resources) as context:
        return dispatch_sensor.evaluate_tick(context)


def _claimed(
    instance: dg.DagsterInstance, database: Database, supervision: SupervisionConfig = SUPERVISION
) -> list[str]:
    result = _tick(instance, database, supervision)
    return [
        session_id
        for request in result.run_requests or []
        for session_id in request.run_config["ops"]["supervise_wave"]["config"]["session_ids"]
    ]


def test_a_tenant_without_a_live_wave_gets_a_wave_at_once(database: Database) -> None:
    tenant = _tenant(database)
    fresh = _submit(database, tenant, seconds_ago=0)
    with dg.instance_for_test() as instance:
        assert _claimed(instance, database) == [fresh]


def test_a_live_wave_is_left_the_new_sessions_and_the_sensor_takes_what_it_left_behind(
    database: Database,
) -> None:
    busy, idle = _tenant(database), _tenant(database)
    fresh = _submit(database, busy, seconds_ago=0)
    left_behind = _submit(database, busy, seconds_ago=30)
    other_tenants = _submit(database, idle, seconds_ago=0)
    with dg.instance_for_test() as instance:
        create_run_for_test(
            instance,
            job_name=JOB_NAME,
            status=dg.DagsterRunStatus.STARTED,
            tags={TENANT_TAG: busy},
        )
        claimed = _claimed(instance, database)
    assert sorted(claimed) == sorted([left_behind, other_tenants])
    assert fresh not in claimed


def test_a_wave_run_is_requested_for_its_tenants_partition_which_is_added_first(
    database: Database,
) -> None:
    new, known = _tenant(database), _tenant(database)
    _submit(database, new, seconds_ago=0)
    _submit(database, known, seconds_ago=0)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(tenant_partitions.name, [known])
        result = _tick(instance, database)
    by_tenant = {request.tags[TENANT_TAG]: request for request in result.run_requests or []}
    assert {tenant: r.partition_key for tenant, r in by_tenant.items()} == {new: new, known: known}
    # Only the tenant without a partition is added, in the same result as its run.
    added = [
        key
        for request in result.dynamic_partitions_requests or []
        for key in request.partition_keys
    ]
    assert added == [new]


def test_a_session_no_agent_can_serve_gets_no_wave_and_the_tenants_others_do(
    database: Database,
) -> None:
    tenant = _tenant(database)
    _agent(database, tenant, "python")
    rust = _submit(database, tenant, 30, "rust")
    python = _submit(database, tenant, 0, "python")
    with dg.instance_for_test() as instance:
        assert _claimed(instance, database) == [python]
        assert _claimed(instance, database) == []
    waiting = SessionService(database).get(Caller.operator(), tenant, rust)
    assert (waiting.status, waiting.status_reason) == (
        SessionStatus.PENDING,
        "no agent offers rust",
    )


def test_the_tick_an_agent_offers_it_the_waiting_session_gets_its_wave(database: Database) -> None:
    tenant = _tenant(database)
    _agent(database, tenant, "python")
    rust = _submit(database, tenant, 0, "rust")
    with dg.instance_for_test() as instance:
        assert _claimed(instance, database) == []
        _agent(database, tenant, "rust")
        assert _claimed(instance, database) == [rust]


def test_after_the_configured_wait_it_fails_and_is_not_retried(database: Database) -> None:
    supervision = SupervisionConfig(unroutable_timeout_seconds=0.05)
    tenant = _tenant(database)
    rust = _submit(database, tenant, 0, "rust")
    with dg.instance_for_test() as instance:
        assert _claimed(instance, database, supervision) == []
        time.sleep(0.1)
        assert _claimed(instance, database, supervision) == []
    failed = SessionService(database).get(Caller.operator(), tenant, rust)
    assert (failed.status, failed.status_reason) == (SessionStatus.FAILED, "no agent offers rust")
    assert not failed.can_retry


def _claimed_long_ago(database: Database, tenant: str, seconds_ago: float) -> str:
    """A session claimed by a wave whose lease ran out `seconds_ago` (its run is gone)."""
    session_id = _submit(database, tenant, seconds_ago=seconds_ago + 60)
    at = utcnow() - timedelta(seconds=seconds_ago + 10)
    service = SessionService(database, clock=lambda: at)
    claim = service.claim_pending(tenant, 1, timedelta(seconds=10), lambda _: "wave-gone")
    assert [s.id for s in claim.sessions] == [session_id]
    return session_id


def test_a_live_wave_is_left_the_unsupervised_sessions_for_the_grace_period_too(
    database: Database,
) -> None:
    """A tenant's live waves (topping up) adopt its unsupervised sessions themselves: a wave run
    of the sensor's would wait behind them in the run queue (2 runs per tenant) for as long as
    they top up."""
    busy = _tenant(database)
    just_expired = _claimed_long_ago(database, busy, seconds_ago=0)
    long_expired = _claimed_long_ago(database, busy, seconds_ago=30)
    with dg.instance_for_test() as instance:
        create_run_for_test(
            instance,
            job_name=JOB_NAME,
            status=dg.DagsterRunStatus.STARTED,
            tags={TENANT_TAG: busy},
        )
        claimed = _claimed(instance, database)
    assert claimed == [long_expired]
    assert just_expired not in claimed


def test_a_topping_up_wave_adopts_its_tenants_unsupervised_sessions_first(
    database: Database,
) -> None:
    tenant = _tenant(database)
    unsupervised = _claimed_long_ago(database, tenant, seconds_ago=5)
    pending = _submit(database, tenant, seconds_ago=0)
    service = SessionService(database)
    claim = claim_next_for(service, tenant, "wave-live", timedelta(seconds=600))
    assert claim(1, 3600) == [unsupervised]
    assert claim(5, 3600) == [pending]
    with tenant_scope(tenant), unit_of_work(database) as uow:
        assert uow.sessions.get(unsupervised).lease_owner == "wave-live"
