"""The wave-failure sensor: when Dagster marks a wave run failed, the leases of its sessions are
expired at once so the dispatcher adopts them; a run Dagster retries itself, or a run of another
job, is left alone. Real run failures (a failing run executed in process) on a real instance."""

from __future__ import annotations

import uuid
from datetime import timedelta

import dagster as dg

from domain.caller import Caller
from domain.clock import utcnow
from domain.session import SessionStatus
from domain.tenant import Tenant
from resources.database import Database, tenant_scope, unit_of_work
from resources.database_resource import DatabaseResource
from resources.redis.resource import RedisResource
from resources.supervision_config import SupervisionConfig
from sensors.run_failure import WILL_RETRY_TAG, wave_failure_sensor
from services.session_service import SessionService, SubmitSession
from services.waves import JOB_NAME, TENANT_TAG, WAVE_TAG

LEASE = timedelta(minutes=10)


@dg.op
def _dies() -> None:
    raise RuntimeError("the wave run died")


@dg.job(name=JOB_NAME)
def _failing_wave() -> None:
    _dies()


@dg.job(name="another_job")
def _failing_other() -> None:
    _dies()


def _claimed_session(database: Database, wave_id: str) -> tuple[str, str]:
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    with unit_of_work(database) as uow:
        uow.tenants.add(Tenant(slug=tenant, name=tenant))
    service = SessionService(database)
    session = service.submit(
        Caller.operator(), tenant, SubmitSession(title="work", prompt="Do it.")
    )
    claimed = service.claim(tenant, session.id, wave_id, LEASE)
    assert claimed.status is SessionStatus.QUEUED
    return tenant, session.id


def _lease_expires_at(database: Database, tenant: str, session_id: str):
    with tenant_scope(tenant), unit_of_work(database) as uow:
        return uow.sessions.get(session_id).lease_expires_at


def _fail(job: dg.JobDefinition, database: Database, tags: dict[str, str]) -> None:
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(instance=instance, tags=tags, raise_on_error=False)
        with dg.build_run_status_sensor_context(
            sensor_name=wave_failure_sensor.name,
            dagster_event=result.get_run_failure_event(),
            dagster_instance=instance,
            dagster_run=result.dagster_run,
            resources={
                "database": DatabaseResource(url=str(database.url)),
                "redis": RedisResource(url=None),
                "supervision": SupervisionConfig(),
            },
        ) as context:
            wave_failure_sensor(context.for_run_failure())


def test_a_failed_wave_hands_its_sessions_back_at_once(database: Database) -> None:
    wave_id = f"wave-{uuid.uuid4().hex[:8]}"
    tenant, session_id = _claimed_session(database, wave_id)
    _fail(_failing_wave, database, {TENANT_TAG: tenant, WAVE_TAG: wave_id})
    assert _lease_expires_at(database, tenant, session_id) <= utcnow()


def test_a_run_dagster_will_retry_keeps_its_leases(database: Database) -> None:
    wave_id = f"wave-{uuid.uuid4().hex[:8]}"
    tenant, session_id = _claimed_session(database, wave_id)
    tags = {TENANT_TAG: tenant, WAVE_TAG: wave_id, WILL_RETRY_TAG: "true"}
    _fail(_failing_wave, database, tags)
    assert _lease_expires_at(database, tenant, session_id) > utcnow() + LEASE / 2


def test_a_failed_run_of_another_job_changes_nothing(database: Database) -> None:
    wave_id = f"wave-{uuid.uuid4().hex[:8]}"
    tenant, session_id = _claimed_session(database, wave_id)
    _fail(_failing_other, database, {TENANT_TAG: tenant, WAVE_TAG: wave_id})
    assert _lease_expires_at(database, tenant, session_id) > utcnow() + LEASE / 2
