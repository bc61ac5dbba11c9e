"""The daily `retention` job of the code location, run in process on a real instance and a
migrated SQLite database: a session finished long ago loses its expired history, a recent one
keeps it, so do webhook deliveries, and Dagster's recent runs (this one included) stay."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg

from domain.clock import utcnow
from domain.session import Session, SessionStatus
from orchestrator_defs.definitions import defs
from resources.database import Database
from resources.database.migrate import upgrade
from resources.database.unit_of_work import UnitOfWork
from resources.database_resource import DatabaseResource
from resources.retention_policy import RetentionPolicy
from tests.integration.database.support import (
    delivery_that,
    new_tenant,
    run_as,
    webhook_endpoint,
)


def _finished_session(db: Database, tenant: str, days_ago: int) -> str:
    at = utcnow() - timedelta(days=days_ago)

    def write(uow: UnitOfWork) -> str:
        session = Session(tenant_id=tenant, title="t", initial_prompt="p", created_at=at)
        uow.sessions.add(session)
        uow.sessions.save_transition(session, session.transition_to(SessionStatus.RUNNING, at=at))
        uow.sessions.append_event(session.id, "agent.step", {"text": "x"}, at=at)
        uow.sessions.add_checkpoint(session.id, session.add_checkpoint({"s": 1}, at=at))
        uow.sessions.save_transition(session, session.transition_to(SessionStatus.COMPLETED, at=at))
        return session.id

    return run_as(db, tenant, write)


def _history(db: Database, tenant: str, session_id: str) -> tuple[int, int]:
    return run_as(
        db,
        tenant,
        lambda uow: (
            len(uow.sessions.events(session_id)),
            len(uow.sessions.checkpoints(session_id)),
        ),
    )


def _delivered_40_and_5_days_ago(uow: UnitOfWork) -> str:
    """Two deliveries that ended (the old one past the job's 30 days); the recent one's id."""
    hook = webhook_endpoint(uow)
    delivery_that(uow, hook, utcnow() - timedelta(days=40), 200)
    return delivery_that(uow, hook, utcnow() - timedelta(days=5), 200)


def _ended_deliveries(db: Database, tenant: str) -> list[str]:
    def read(uow: UnitOfWork) -> list[str]:
        [endpoint] = uow.webhooks.list()
        return [d.id for d in uow.webhooks.deliveries(endpoint.id, 100) if d.status != "PENDING"]

    return run_as(db, tenant, read)


def test_the_retention_job_prunes_expired_history(sqlite_url: str) -> None:
    upgrade(sqlite_url)
    db = Database(sqlite_url)
    try:
        tenant = new_tenant(db)
        old = _finished_session(db, tenant, days_ago=40)
        recent = _finished_session(db, tenant, days_ago=5)
        recent_delivery = run_as(db, tenant, _delivered_40_and_5_days_ago)
        with dg.instance_for_test() as instance:
            # Loaded with this instance current: Dagster reads its definitions state from the
            # current instance (one an earlier test left behind may be gone).
            job = defs().get_job_def("retention")
            earlier = job.execute_in_process(
                instance=instance,
                resources={
                    "database": DatabaseResource(url=sqlite_url),
                    "retention": RetentionPolicy(history_days=30, run_days=30),
                },
            )
            result = job.execute_in_process(
                instance=instance,
                resources={
                    "database": DatabaseResource(url=sqlite_url),
                    "retention": RetentionPolicy(history_days=30, run_days=30),
                },
            )
            assert earlier.success and result.success
            assert {r.dagster_run.run_id for r in instance.get_run_records()} == {
                earlier.run_id,
                result.run_id,
            }
        assert _history(db, tenant, old) == (3, 0)  # created, RUNNING, COMPLETED
        assert _history(db, tenant, recent) == (4, 1)
        assert _ended_deliveries(db, tenant) == [recent_delivery]
    finally:
        db.dispose()
