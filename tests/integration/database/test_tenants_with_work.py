"""The tenants with work: one cross-tenant read that tells the sensors which tenants to visit.

Run without a tenant scope, on SQLite and on PostgreSQL (where the application role sees no other
tenant's rows: the answer comes from a SECURITY DEFINER function that returns only slugs). The
module's database is shared by its tests, so each test asserts on its own new tenants only.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from domain.agent import Agent, AgentKind, AgentStatus
from domain.clock import utcnow
from domain.session import Session, SessionStatus
from domain.task import Task
from domain.webhook import DeliveryAttempt, WebhookDelivery, WebhookEndpoint
from resources.database import Database, tenant_scope, unit_of_work
from tests.integration.database.support import APP_ROLE, new_tenant

_S = SessionStatus
FINDER_ROLE = "indorch_tenant_finder"
FINDER_FUNCTIONS = (
    "tenants_to_dispatch",
    "tenants_to_retry",
    "tenants_to_settle",
    "tenants_with_training",
    "tenants_with_due_webhooks",
    "tenants_with_probed_agents",
)
NOW = utcnow()
LATER = NOW + timedelta(minutes=5)
EARLIER = NOW - timedelta(minutes=5)


def _add(db: Database, tenant: str, status: SessionStatus = _S.PENDING, **fields: object) -> str:
    session = Session(
        tenant_id=tenant, title="work", initial_prompt="Do it.", status=status, **fields
    )
    with tenant_scope(tenant), unit_of_work(db) as uow:
        uow.sessions.add(session)
    return session.id


def _to_dispatch(db: Database, at: object = NOW) -> list[str]:
    with unit_of_work(db) as uow:
        return uow.tenant_work.to_dispatch(at)


def _to_retry(db: Database) -> list[str]:
    with unit_of_work(db) as uow:
        return uow.tenant_work.to_retry()


def _to_settle(db: Database) -> list[str]:
    with unit_of_work(db) as uow:
        return uow.tenant_work.to_settle()


def test_a_tenant_with_a_due_pending_session_is_to_dispatch_and_an_idle_one_is_not(
    database: Database,
) -> None:
    busy, idle, finished = (new_tenant(database) for _ in range(3))
    _add(database, busy)
    _add(database, finished, _S.COMPLETED)
    found = _to_dispatch(database)
    assert busy in found
    assert idle not in found and finished not in found


def test_a_pending_session_in_its_retry_backoff_is_due_only_once_the_backoff_is_over(
    database: Database,
) -> None:
    waiting = new_tenant(database)
    _add(database, waiting, next_attempt_at=LATER)
    assert waiting not in _to_dispatch(database, NOW)
    assert waiting in _to_dispatch(database, LATER)


@pytest.mark.parametrize(
    ("status", "lease_expires_at", "unsupervised"),
    [
        (_S.QUEUED, EARLIER, True),  # claimed, never started, the claim ran out
        (_S.QUEUED, LATER, False),  # claimed, its wave about to start it
        (_S.RUNNING, EARLIER, True),  # its wave died
        (_S.RUNNING, LATER, False),  # supervised
        (_S.DEGRADED, None, True),  # never leased
        (_S.DEGRADED, LATER, False),
        (_S.PAUSED, EARLIER, False),  # nobody supervises a paused session
    ],
)
def test_a_tenant_with_an_unsupervised_session_is_to_dispatch(
    database: Database, status: SessionStatus, lease_expires_at: object, unsupervised: bool
) -> None:
    tenant = new_tenant(database)
    _add(database, tenant, status, lease_owner="wave-x", lease_expires_at=lease_expires_at)
    assert (tenant in _to_dispatch(database)) is unsupervised


def test_inactive_and_deleted_tenants_are_never_visited(database: Database) -> None:
    inactive, deleted = new_tenant(database), new_tenant(database)
    for tenant in (inactive, deleted):
        _add(database, tenant)
        _add(database, tenant, _S.FAILED, retry_count=0, max_retries=3)
    with unit_of_work(database) as uow:
        tenant = uow.tenants.get(inactive)
        uow.tenants.update(tenant.model_copy(update={"active": False}))
        uow.tenants.delete(deleted)
    assert {inactive, deleted}.isdisjoint(_to_dispatch(database))
    assert {inactive, deleted}.isdisjoint(_to_retry(database))
    assert {inactive, deleted}.isdisjoint(_to_settle(database))


@pytest.mark.parametrize("status", [_S.FAILED, _S.TIMEOUT, _S.ORPHANED])
def test_a_tenant_with_a_retry_left_is_to_retry_and_one_whose_retries_are_used_is_not(
    database: Database, status: SessionStatus
) -> None:
    retries_left, retries_used = new_tenant(database), new_tenant(database)
    _add(database, retries_left, status, retry_count=1, max_retries=2)
    _add(database, retries_used, status, retry_count=2, max_retries=2)
    found = _to_retry(database)
    assert retries_left in found
    assert retries_used not in found
    assert {retries_left, retries_used}.isdisjoint(_to_dispatch(database))


def test_a_tenant_with_a_decomposed_request_to_settle_is_to_settle_not_to_retry(
    database: Database,
) -> None:
    coordinating, abandoned, plain = (new_tenant(database) for _ in range(3))
    parent = _add(database, coordinating, _S.RUNNING, lease_expires_at=LATER)
    child = _add(database, coordinating, _S.COMPLETED, parent_id=parent)
    with tenant_scope(coordinating), unit_of_work(database) as uow:
        uow.tasks.add(Task(tenant_id=coordinating, title="x", session_id=child))
    ended = _add(database, abandoned, _S.CANCELLED)
    _add(database, abandoned, _S.PENDING, parent_id=ended, next_attempt_at=LATER)
    _add(database, plain, _S.RUNNING, lease_expires_at=LATER)
    found = _to_settle(database)
    assert coordinating in found and abandoned in found
    assert plain not in found
    assert {coordinating, abandoned, plain}.isdisjoint(_to_retry(database))


def test_the_answer_is_slugs_in_order_each_once(database: Database) -> None:
    tenants = sorted(new_tenant(database) for _ in range(3))
    for tenant in tenants:
        _add(database, tenant)
        _add(database, tenant)
        _add(database, tenant, _S.QUEUED, lease_expires_at=EARLIER)
    found = [slug for slug in _to_dispatch(database) if slug in tenants]
    assert found == tenants


# --- PostgreSQL: the one deliberate way across the row-level security wall ----------------------


def test_the_application_role_still_sees_no_other_tenant_s_session(
    pg_database: Database, pg_admin_engine: Engine
) -> None:
    tenant = new_tenant(pg_database)
    _add(pg_database, tenant)
    with unit_of_work(pg_database) as uow:
        assert uow.session.execute(text("SELECT current_user")).scalar_one() == APP_ROLE
        assert uow.session.execute(text("SELECT count(*) FROM sessions")).scalar_one() == 0
        assert tenant in uow.tenant_work.to_dispatch(NOW)


def test_the_finder_functions_return_only_slugs_as_a_role_nobody_can_become_reading_no_prompt(
    pg_admin_engine: Engine,
) -> None:
    with pg_admin_engine.connect() as connection:
        functions = {
            row.proname: row
            for row in connection.execute(
                text(
                    "SELECT p.proname, p.prosecdef, pg_get_userbyid(p.proowner) AS owner, "
                    "pg_get_function_result(p.oid) AS result, "
                    "has_function_privilege('public', p.oid, 'EXECUTE') AS public_may, "
                    "has_function_privilege(:app, p.oid, 'EXECUTE') AS app_may "
                    "FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace"
                ),
                {"app": APP_ROLE},
            )
        }
        role = connection.execute(
            text(
                "SELECT rolsuper, rolbypassrls, rolcanlogin, pg_has_role(:app, oid, 'USAGE') "
                "AS app_may_become FROM pg_roles WHERE rolname = :finder"
            ),
            {"app": APP_ROLE, "finder": FINDER_ROLE},
        ).one()
        reads = {
            column: connection.execute(
                text("SELECT has_column_privilege(:finder, 'sessions', :column, 'SELECT')"),
                {"finder": FINDER_ROLE, "column": column},
            ).scalar_one()
            for column in ("tenant_id", "status", "initial_prompt", "result", "error")
        }
        delivery_reads = {
            column: connection.execute(
                text(
                    "SELECT has_column_privilege(:finder, 'webhook_deliveries', :column, 'SELECT')"
                ),
                {"finder": FINDER_ROLE, "column": column},
            ).scalar_one()
            for column in ("tenant_id", "status", "next_attempt_at", "payload", "event_type")
        }
        agent_reads = {
            column: connection.execute(
                text("SELECT has_column_privilege(:finder, 'agents', :column, 'SELECT')"),
                {"finder": FINDER_ROLE, "column": column},
            ).scalar_one()
            for column in (
                "tenant_id",
                "status",
                "kind",
                "server_url",
                "password_sealed",
                "password_env",
                "token_hash",
            )
        }
        job_reads = {
            column: connection.execute(
                text("SELECT has_column_privilege(:finder, 'fine_tuning_jobs', :column, 'SELECT')"),
                {"finder": FINDER_ROLE, "column": column},
            ).scalar_one()
            for column in ("tenant_id", "status", "base_model", "dataset_uri", "error")
        }
    assert delivery_reads == {
        "tenant_id": True,
        "status": True,
        "next_attempt_at": True,
        "payload": False,
        "event_type": False,
    }
    assert agent_reads == {  # never an agent's address or any secret of it
        "tenant_id": True,
        "status": True,
        "kind": True,
        "server_url": False,
        "password_sealed": False,
        "password_env": False,
        "token_hash": False,
    }
    assert job_reads == {
        "tenant_id": True,
        "status": True,
        "base_model": False,
        "dataset_uri": False,
        "error": False,
    }
    assert reads == {
        "tenant_id": True,
        "status": True,
        "initial_prompt": False,
        "result": False,
        "error": False,
    }
    for name in FINDER_FUNCTIONS:
        function = functions[name]
        assert function.prosecdef and function.owner == FINDER_ROLE, name
        assert function.result == "SETOF text", name
        assert function.app_may and not function.public_may, name
    assert (role.rolsuper, role.rolbypassrls, role.rolcanlogin) == (False, False, False)
    assert not role.app_may_become


def test_a_tenant_with_a_fine_tuning_job_in_flight_is_found_and_one_with_finished_jobs_not(
    database: Database,
) -> None:
    from domain.fine_tuning import FineTuningJob, FineTuningStatus

    training, finished = new_tenant(database, "train"), new_tenant(database, "done")
    for tenant, status in ((training, FineTuningStatus.RUNNING), (finished, "COMPLETED")):
        with tenant_scope(tenant), unit_of_work(database) as uow:
            uow.fine_tuning_jobs.add(
                FineTuningJob(tenant_id=tenant, base_model="base", status=FineTuningStatus(status))
            )
    with unit_of_work(database) as uow:
        found = uow.tenant_work.with_training()
    assert training in found and finished not in found


def _delivery_for(database: Database, tenant: str) -> WebhookDelivery:
    """A webhook of the tenant's, and the delivery a session's state change writes for it."""
    with tenant_scope(tenant), unit_of_work(database) as uow:
        uow.webhooks.add(
            WebhookEndpoint(tenant_id=tenant, url=f"https://{tenant}.example/h", events=["*"]),
            "sealed",
        )
        session = uow.sessions.add(Session(tenant_id=tenant, title="w", initial_prompt="Do it."))
        uow.sessions.save_transition(session, session.transition_to(_S.CANCELLED))
        (delivery,) = uow.webhooks.due(utcnow() + timedelta(minutes=1), 10)
    return delivery


def test_a_tenant_with_a_webhook_delivery_due_is_found_and_one_waiting_or_done_is_not(
    database: Database,
) -> None:
    due, waiting, delivered, quiet = (
        new_tenant(database, name) for name in ("hook", "wait", "sent", "quiet")
    )
    _delivery_for(database, due)
    later = _delivery_for(database, waiting)
    sent = _delivery_for(database, delivered)
    with tenant_scope(waiting), unit_of_work(database) as uow:
        assert uow.webhooks.postpone(later, utcnow() + timedelta(minutes=5))
    taken = utcnow() + timedelta(seconds=30)  # as a runner takes a delivery for its attempt
    with tenant_scope(delivered), unit_of_work(database) as uow:
        assert uow.webhooks.postpone(sent, taken)
        sent.record(DeliveryAttempt(at=utcnow(), status_code=200))
        uow.webhooks.save(sent, taken)
    with unit_of_work(database) as uow:
        found = uow.tenant_work.with_due_webhooks(utcnow() + timedelta(seconds=1))
    assert due in found
    assert waiting not in found and delivered not in found and quiet not in found


def _agent(database: Database, tenant: str, **fields: object) -> None:
    agent = Agent(tenant_id=tenant, name="agent", server_url="http://agent.test", **fields)
    with tenant_scope(tenant), unit_of_work(database) as uow:
        uow.agents.add(agent)


def test_a_tenant_with_an_active_agent_on_a_server_is_probed_and_the_others_are_not(
    database: Database,
) -> None:
    """The agent-health sensor probes servers: a tenant with none to probe is not visited."""
    probed, external, draining, inactive, none, deleted = (
        new_tenant(database, name) for name in ("probe", "eap", "drain", "off", "none", "gone")
    )
    _agent(database, probed)
    _agent(database, external, kind=AgentKind.EXTERNAL)
    _agent(database, draining, status=AgentStatus.DRAINING)
    _agent(database, inactive, status=AgentStatus.INACTIVE)
    _agent(database, deleted)
    with unit_of_work(database) as uow:
        uow.tenants.delete(deleted)
    with unit_of_work(database) as uow:
        found = uow.tenant_work.with_probed_agents()
    assert probed in found
    assert not {external, draining, inactive, none, deleted} & set(found)
