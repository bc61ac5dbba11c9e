"""The dispatch sensor and long-lived waves: while a tenant has a live wave run (which takes on
its tenant's new sessions itself), the sensor claims only the sessions left behind; a tenant
without one gets new waves at once. Real sensor evaluation on a real SQLite database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import dagster as dg
import pytest

from domain.clock import utcnow
from domain.tenant import Tenant
from instance_plugins.dagster_internals import create_run_for_test
from orchestrator_defs.sessions.job import session_wave
from resources.dagster_partitions import tenant_partitions
from resources.database import Database, unit_of_work
from resources.database.migrate import upgrade
from resources.database_resource import DatabaseResource
from resources.opencode.resource import OpenCodeResource
from resources.redis.resource import RedisResource
from resources.supervision_config import SupervisionConfig
from sensors.dispatch import dispatch_sensor
from services.session_service import SessionService, SubmitSession
from services.waves import JOB_NAME, TENANT_TAG

SUPERVISION = SupervisionConfig(left_behind_seconds=10.0)


@pytest.fixture
def database(sqlite_url: str) -> Iterator[Database]:
    upgrade(sqlite_url)
    database = Database(sqlite_url)
    yield database
    database.dispose()


def _tenant(database: Database) -> str:
    slug = f"t-{uuid.uuid4().hex[:8]}"
    with unit_of_work(database) as uow:
        uow.tenants.add(Tenant(slug=slug, name=slug, max_concurrent_sessions=50))
    return slug


def _submit(database: Database, tenant: str, seconds_ago: float) -> str:
    at = utcnow() - timedelta(seconds=seconds_ago)
    service = SessionService(database, clock=lambda: at)
    return service.submit(tenant, SubmitSession(title="work", prompt="Do it.")).id


def _tick(instance: dg.DagsterInstance, database: Database) -> dg.SensorResult:
    resources = {
        "database": DatabaseResource(url=str(database.url)),
        "supervision": SUPERVISION,
        "redis": RedisResource(url=None),
    }
    with dg.build_sensor_context(
        instance=instance,
        instance_ref=instance.get_ref(),
        resources=resources,
        definitions=dg.Definitions(
            jobs=[session_wave], resources={**resources, "opencode": OpenCodeResource()}
        ),
    ) as context:
        return dispatch_sensor.evaluate_tick(context)


def _claimed(instance: dg.DagsterInstance, database: Database) -> list[str]:
    result = _tick(instance, database)
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
