"""Helpers shared by the persistence tests: backends, transactions as a tenant, seeded tenants,
threads started together."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TypeVar

import pytest

from domain.agent import Agent
from domain.api_key import ApiKey
from domain.code_repository import CodeRepository
from domain.evaluation import Evaluation, EvaluationDecision
from domain.external_agent import hash_agent_token
from domain.fine_tuning import FineTuningJob, FineTuningStatus
from domain.promotion import ModelPromotion
from domain.runtime import Runtime
from domain.session import Session, SessionStatus
from domain.task import Task, TaskDependency, TaskStatus
from domain.tenant import Role, Tenant, User
from domain.webhook import MAX_ATTEMPTS, DeliveryAttempt, WebhookDelivery, WebhookEndpoint
from domain.workspace import TenantWorkspace
from resources.database import Database, tenant_scope, unit_of_work
from resources.database.unit_of_work import UnitOfWork

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]
APP_ROLE = "indorch_app"
IDEMPOTENCY_KEY = "submit-42"  # the same key in every tenant: unique per tenant, not globally
USAGE_DAY = date(2026, 1, 15)
THREAD_TIMEOUT_SECONDS = 60
SHARED_HOST = "runtime-host"  # a host every seeded tenant has a managed runtime on
SHARED_SERVER = "http://127.0.0.1:4096"  # an agent server every seeded tenant has a workspace on
T = TypeVar("T")


def run_as(db: Database, tenant: str | None, action: Callable[[UnitOfWork], T]) -> T:
    """Run `action` in one transaction as `tenant` (None: no tenant set); commit if it returns."""
    if tenant is None:
        with unit_of_work(db) as uow:
            return action(uow)
    with tenant_scope(tenant), unit_of_work(db) as uow:
        return action(uow)


def in_threads(count: int, work: Callable[[int], None]) -> None:
    """Run `work(i)` in `count` threads started together; re-raise the first error."""
    barrier = threading.Barrier(count, timeout=THREAD_TIMEOUT_SECONDS)
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait()
            work(index)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(THREAD_TIMEOUT_SECONDS)
        assert not thread.is_alive(), "a worker thread hung"
    if errors:
        raise errors[0]


def new_tenant(db: Database, prefix: str = "t") -> str:
    slug = f"{prefix}-{uuid.uuid4().hex[:10]}"
    with unit_of_work(db) as uow:
        uow.tenants.add(Tenant(slug=slug, name=f"Tenant {slug}"))
    return slug


FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC)
SESSIONS_PER_SEED = 5  # session, child, coordinator, abandoned subtask, unroutable


@dataclass(frozen=True)
class Seed:
    """One tenant's records, as the repositories returned them after seeding."""

    tenant: str
    user: User  # alice@example.com, an e-mail address every seeded tenant has
    own_user: User  # an e-mail address only this tenant has
    api_key: ApiKey
    api_key_plaintext: str
    agent: Agent
    session: Session  # RUNNING (active), 2 checkpoints, 3 events, idempotency key
    child_session: Session  # PENDING, parent = session
    coordinator: Session  # CANCELLED parent of a decomposed request
    abandoned_subtask: Session  # PENDING child of coordinator, linked to a task
    unroutable_session: Session  # PENDING, set aside: needs rust, which no agent offers
    task: Task  # READY, linked to session
    subtask: Task  # PENDING, child of task, depends on task
    job: FineTuningJob  # QUEUED
    evaluation: Evaluation  # of job
    usage_day: date
    workspace: TenantWorkspace  # on SHARED_SERVER
    own_workspace: TenantWorkspace  # on a server only this tenant has a workspace on
    repository: CodeRepository  # "app", a name every seeded tenant has
    own_repository: CodeRepository  # a name only this tenant has
    runtime: Runtime  # on SHARED_HOST
    own_runtime: Runtime  # on a host only this tenant has a runtime on
    promotion: ModelPromotion  # of evaluation's candidate
    agent_token: str  # the external-agent token whose hash `agent` holds
    webhook: WebhookEndpoint  # wants every event
    delivery: WebhookDelivery  # PENDING: of session's move to RUNNING

    @property
    def active_sessions(self) -> int:
        return 1


def seed_tenant(db: Database, tenant: str) -> Seed:
    """One record of every kind for `tenant`, through the repositories (so RLS lets it in)."""

    def write(uow: UnitOfWork) -> Seed:
        user = uow.users.add(User(tenant_id=tenant, email="alice@example.com", role=Role.LEAD))
        own_user = uow.users.add(User(tenant_id=tenant, email=f"owner@{tenant}.example.com"))
        api_key, plaintext = uow.api_keys.create("ci", role=Role.MEMBER, user_id=user.id)
        agent_token = f"eat_{tenant}"
        agent = uow.agents.add(
            Agent(
                tenant_id=tenant,
                name="builder",
                server_url="http://127.0.0.1:4096",
                token_hash=hash_agent_token(agent_token),
            )
        )
        uow.agent_servers.claim(f"{tenant}.example:4096")  # a server of its own
        uow.secrets.put("repo-token", f"sealed-{tenant}")  # the repository holds sealed text only
        uow.secrets.put(f"own-{tenant}", "sealed")  # a name no other tenant has
        # A webhook: the session's transition below writes its delivery (the outbox).
        webhook = uow.webhooks.add(
            WebhookEndpoint(tenant_id=tenant, url=f"https://{tenant}.example/h", events=["*"]), "x"
        )
        session = Session(
            tenant_id=tenant,
            title="Fix the flaky test",
            initial_prompt="Find and fix it.",
            idempotency_key=IDEMPOTENCY_KEY,
        )
        uow.sessions.add(session)
        uow.sessions.save_transition(session, session.transition_to(SessionStatus.RUNNING))
        for number in (1, 2):
            checkpoint = session.add_checkpoint({"step": number})
            uow.sessions.add_checkpoint(session.id, checkpoint)
        uow.sessions.append_event(session.id, "agent.message", {"text": "hello"})
        child = uow.sessions.add(
            Session(tenant_id=tenant, title="Child", initial_prompt="Sub.", parent_id=session.id)
        )
        coordinator = uow.sessions.add(
            Session(tenant_id=tenant, title="Decomposed", initial_prompt="1. x\n2. y")
        )
        uow.sessions.save_transition(
            coordinator, coordinator.transition_to(SessionStatus.CANCELLED)
        )
        abandoned = uow.sessions.add(
            Session(tenant_id=tenant, title="x", initial_prompt="x", parent_id=coordinator.id)
        )
        uow.tasks.add(Task(tenant_id=tenant, title="x", session_id=abandoned.id))
        unroutable = uow.sessions.add(
            Session(
                tenant_id=tenant, title="Port", initial_prompt="x", required_capabilities=["rust"]
            )
        )
        unroutable.mark_unroutable("no agent offers rust", unroutable.created_at)
        uow.sessions.save(unroutable)
        task = uow.tasks.add(Task(tenant_id=tenant, title="Plan", session_id=session.id))
        uow.tasks.save_transition(task, task.transition_to(TaskStatus.READY))
        subtask = uow.tasks.add(
            Task(tenant_id=tenant, title="Build", parent_task_id=task.id, depth=1)
        )
        uow.tasks.add_dependency(TaskDependency(task_id=subtask.id, depends_on_id=task.id))
        job = uow.fine_tuning_jobs.add(FineTuningJob(tenant_id=tenant, base_model="qwen/coder"))
        uow.fine_tuning_jobs.save_transition(job, job.transition_to(FineTuningStatus.QUEUED))
        evaluation = uow.evaluations.add(
            Evaluation(
                tenant_id=tenant,
                job_id=job.id,
                base_model="qwen/coder",
                candidate_model="ft:qwen/coder:1",
                items=40,
                base_score=0.5,
                candidate_score=0.6,
                p_value=0.01,
                decision=EvaluationDecision.PROMOTE,
            )
        )
        uow.usage.record(
            USAGE_DAY, sessions=1, tokens_in=100, tokens_out=50, cost_usd=Decimal("0.5")
        )
        workspace = uow.workspaces.add(
            TenantWorkspace(
                tenant_id=tenant, server_url=SHARED_SERVER, directory=f"/wt/shared/tenant-{tenant}"
            )
        )
        own_workspace = uow.workspaces.add(
            TenantWorkspace(
                tenant_id=tenant,
                server_url=f"http://{tenant}.example:4096",
                directory=f"/wt/own/tenant-{tenant}",
            )
        )
        repository = uow.code_repositories.add(
            CodeRepository(tenant_id=tenant, name="app", url=f"file:///srv/{tenant}/app.git")
        )
        own_repository = uow.code_repositories.add(
            CodeRepository(tenant_id=tenant, name=f"{tenant}-only", url="https://git.example/x")
        )
        promotion = uow.promotions.add(
            ModelPromotion(
                tenant_id=tenant,
                model=evaluation.candidate_model,
                job_id=job.id,
                evaluation_id=evaluation.id,
            )
        )
        runtime = uow.runtimes.add(Runtime(tenant_id=tenant, host=SHARED_HOST, os_user="u"))
        own_runtime = uow.runtimes.add(
            Runtime(tenant_id=tenant, host=f"host-{tenant}", os_user="u")
        )
        return Seed(
            tenant=tenant,
            user=user,
            own_user=own_user,
            api_key=api_key,
            api_key_plaintext=plaintext,
            agent=agent,
            session=uow.sessions.get(session.id),
            child_session=uow.sessions.get(child.id),
            coordinator=uow.sessions.get(coordinator.id),
            abandoned_subtask=uow.sessions.get(abandoned.id),
            unroutable_session=uow.sessions.get(unroutable.id),
            task=uow.tasks.get(task.id),
            subtask=uow.tasks.get(subtask.id),
            job=uow.fine_tuning_jobs.get(job.id),
            evaluation=evaluation,
            usage_day=USAGE_DAY,
            workspace=workspace,
            own_workspace=own_workspace,
            repository=repository,
            own_repository=own_repository,
            runtime=runtime,
            own_runtime=own_runtime,
            promotion=promotion,
            agent_token=agent_token,
            webhook=webhook,
            delivery=uow.webhooks.due(FAR_FUTURE, 1)[0],
        )

    return run_as(db, tenant, write)


def webhook_endpoint(uow: UnitOfWork) -> str:
    """A webhook of the current tenant that wants every session change (a public address)."""
    endpoint = WebhookEndpoint(tenant_id=uow.webhooks.tenant_id, url="https://93.184.215.14/h")
    return uow.webhooks.add(endpoint, "sealed").id


def delivery_that(uow: UnitOfWork, endpoint_id: str, at: datetime, ends: int | None) -> str:
    """A session change told to the endpoint at `at` (its delivery written with it), then
    answered `ends` (200: DELIVERED, 500: FAILED out of attempts) or left PENDING (None)."""
    tenant = uow.webhooks.tenant_id
    session = Session(tenant_id=tenant, title="t", initial_prompt="p", created_at=at)
    uow.sessions.add(session)
    uow.sessions.save_transition(session, session.transition_to(SessionStatus.CANCELLED, at=at))
    [delivery] = [
        d
        for d in uow.webhooks.deliveries(endpoint_id, 100)
        if d.payload["data"]["session_id"] == session.id
    ]
    if ends is not None:
        taken_until = at + timedelta(seconds=30)
        assert uow.webhooks.postpone(delivery, taken_until)
        delivery.attempts = MAX_ATTEMPTS - 1
        delivery.record(DeliveryAttempt(at=at, status_code=ends))
        uow.webhooks.save(delivery, taken_until)
    return delivery.id
