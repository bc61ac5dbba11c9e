"""The application's tables (SQLAlchemy 2.0 declarative). Alembic migrations create them.

Every table but `tenants` carries `tenant_id`; those are the "tenant tables" that repositories
filter and that PostgreSQL row-level security guards (see migrations/versions/0001).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from resources.database.column_types import BigIntPrimaryKey, JsonDocument, UtcDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ID = String(40)
TENANT = String(63)
STATUS = String(32)
RETRYABLE_SQL = "status IN ('FAILED', 'TIMEOUT', 'ORPHANED') AND retry_count < max_retries"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UtcDateTime(), dict[str, Any]: JsonDocument}


def tenant_fk(index: bool = True) -> Mapped[str]:
    """The owning tenant; `index` False where the table's other indexes all lead with it (a
    lone index on it then only misleads the planner: migration 0017)."""
    return mapped_column(TENANT, ForeignKey("tenants.slug", ondelete="CASCADE"), index=index)


class TenantRow(Base):
    __tablename__ = "tenants"

    slug: Mapped[str] = mapped_column(TENANT, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    max_concurrent_sessions: Mapped[int] = mapped_column(Integer, default=10)
    monthly_token_budget: Mapped[int] = mapped_column(BigInteger, default=1_000_000)
    created_at: Mapped[datetime]
    deleted_at: Mapped[datetime | None]


class UserRow(Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("tenant_id", "email"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = tenant_fk()
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]


class ApiKeyRow(Base):
    """Only the SHA-256 of a key is stored; the key itself is shown once, at creation."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = tenant_fk()
    user_id: Mapped[str | None] = mapped_column(ID, ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class AgentRow(Base):
    __tablename__ = "agents"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name"),
        Index("ix_agents_probed", "status", "kind", "tenant_id"),  # the health sensor's (0019)
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = tenant_fk()
    name: Mapped[str] = mapped_column(String(200))
    server_url: Mapped[str] = mapped_column(String(2000))
    kind: Mapped[str] = mapped_column(String(16), default="opencode")  # domain.agent.AgentKind
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)  # EAP agents (0015)
    password_env: Mapped[str | None] = mapped_column(String(200))
    password_sealed: Mapped[str | None] = mapped_column(Text)  # managed runtimes (0012)
    opencode_agent: Mapped[str] = mapped_column(String(100))
    permission_policy: Mapped[str | None] = mapped_column(String(16))  # 0007
    model: Mapped[str | None] = mapped_column(String(200))
    capabilities: Mapped[list[str]] = mapped_column(JsonDocument)
    capacity: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="ACTIVE")  # domain.agent.AgentStatus
    performance: Mapped[dict[str, Any]]
    last_heartbeat_at: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime]


class SessionRow(Base):
    __tablename__ = "sessions"
    __table_args__ = (
        UniqueConstraint("tenant_id", "idempotency_key"),
        Index("ix_sessions_dispatch", "tenant_id", "status", "priority", "id"),
        Index("ix_sessions_status_lease", "status", "lease_expires_at"),
        # Few rows: the sessions waiting for an agent that offers what they need (0004).
        Index(
            "ix_sessions_unroutable",
            "tenant_id",
            "unroutable_since",
            postgresql_where=text("unroutable_since IS NOT NULL"),
            sqlite_where=text("unroutable_since IS NOT NULL"),
        ),
        # Which tenants have work (repositories/tenant_work.py; migration 0006).
        Index("ix_sessions_pending_due", "status", "next_attempt_at", "tenant_id"),
        Index(
            "ix_sessions_retryable",
            "tenant_id",
            postgresql_where=text(RETRYABLE_SQL),
            sqlite_where=text(RETRYABLE_SQL),
        ),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = tenant_fk(
        index=False
    )  # uq_sessions_tenant_id and ix_sessions_dispatch lead with it
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    session_type: Mapped[str] = mapped_column(String(16))
    priority: Mapped[int] = mapped_column(Integer)
    initial_prompt: Mapped[str] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(String(200))
    agent_config: Mapped[dict[str, Any]]
    repository: Mapped[str | None] = mapped_column(String(63))  # a code repository's name (0007)
    ref: Mapped[str | None] = mapped_column(String(250))
    max_duration_seconds: Mapped[int] = mapped_column(Integer)
    parent_id: Mapped[str | None] = mapped_column(
        ID, ForeignKey("sessions.id", ondelete="SET NULL"), index=True
    )
    tags: Mapped[list[str]] = mapped_column(JsonDocument)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JsonDocument)
    metrics: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(STATUS)
    status_reason: Mapped[str] = mapped_column(Text, default="")
    retry_count: Mapped[int] = mapped_column(Integer, default=0)
    max_retries: Mapped[int] = mapped_column(Integer, default=3)
    next_attempt_at: Mapped[datetime | None]
    result: Mapped[dict[str, Any] | None]
    error: Mapped[dict[str, Any] | None]
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    required_capabilities: Mapped[list[str]] = mapped_column(JsonDocument)
    cost_cap: Mapped[dict[str, Any] | None]
    agent_id: Mapped[str | None] = mapped_column(ID)
    agent_session_id: Mapped[str | None] = mapped_column(String(200))
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None]
    unroutable_since: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(Integer, default=1)
    last_event_seq: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class SessionEventRow(Base):
    """Append-only history of a session, numbered 1..n per session."""

    __tablename__ = "session_events"
    __table_args__ = (
        UniqueConstraint("session_id", "seq"),
        Index("ix_session_events_tenant_created", "tenant_id", "created_at"),
        Index("ix_session_events_tenant_row", "tenant_id", "id"),  # the tenant-wide live stream
    )

    id: Mapped[int] = mapped_column(BigIntPrimaryKey, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = tenant_fk(
        index=False
    )  # ix_session_events_tenant_created and _tenant_row lead with it
    session_id: Mapped[str] = mapped_column(ID, ForeignKey("sessions.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    event_type: Mapped[str] = mapped_column(String(64))
    old_status: Mapped[str | None] = mapped_column(STATUS)
    new_status: Mapped[str | None] = mapped_column(STATUS)
    reason: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class CheckpointRow(Base):
    __tablename__ = "checkpoints"

    session_id: Mapped[str] = mapped_column(
        ID, ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True
    )
    sequence: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[str] = tenant_fk()
    data: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class TaskRow(Base):
    __tablename__ = "tasks"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = tenant_fk()
    parent_task_id: Mapped[str | None] = mapped_column(
        ID, ForeignKey("tasks.id", ondelete="CASCADE"), index=True
    )
    session_id: Mapped[str | None] = mapped_column(
        ID, ForeignKey("sessions.id", ondelete="SET NULL"), index=True
    )
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    depth: Mapped[int] = mapped_column(Integer, default=0)
    required_capabilities: Mapped[list[str]] = mapped_column(JsonDocument)
    estimate: Mapped[dict[str, Any] | None]
    status: Mapped[str] = mapped_column(STATUS)
    status_reason: Mapped[str] = mapped_column(Text, default="")
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class TaskDependencyRow(Base):
    __tablename__ = "task_dependencies"

    task_id: Mapped[str] = mapped_column(
        ID, ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True
    )
    depends_on_id: Mapped[str] = mapped_column(
        ID, ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True
    )
    tenant_id: Mapped[str] = tenant_fk()
    dependency_type: Mapped[str] = mapped_column(String(2))


class FineTuningJobRow(Base):
    __tablename__ = "fine_tuning_jobs"
    __table_args__ = (Index("ix_fine_tuning_jobs_status", "status", "tenant_id"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = tenant_fk()
    base_model: Mapped[str] = mapped_column(String(200))
    dataset_uri: Mapped[str | None] = mapped_column(String(2000))
    parameters: Mapped[dict[str, Any]]
    metrics: Mapped[dict[str, Any]]
    provider_job_id: Mapped[str | None] = mapped_column(String(200))
    fine_tuned_model: Mapped[str | None] = mapped_column(String(200))
    model_version: Mapped[str | None] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(STATUS)
    status_reason: Mapped[str] = mapped_column(Text, default="")
    retry_count: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[dict[str, Any] | None]
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class StatusEventRow(Base):
    """Append-only transitions of tasks and fine-tuning jobs (sessions have their own stream)."""

    __tablename__ = "status_events"
    __table_args__ = (Index("ix_status_events_entity", "entity_kind", "entity_id"),)

    id: Mapped[int] = mapped_column(BigIntPrimaryKey, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = tenant_fk()
    entity_kind: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str] = mapped_column(ID)
    old_status: Mapped[str] = mapped_column(STATUS)
    new_status: Mapped[str] = mapped_column(STATUS)
    reason: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class EvaluationRow(Base):
    __tablename__ = "evaluations"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = tenant_fk()
    job_id: Mapped[str | None] = mapped_column(
        ID, ForeignKey("fine_tuning_jobs.id", ondelete="SET NULL"), index=True
    )
    base_model: Mapped[str] = mapped_column(String(200))
    candidate_model: Mapped[str] = mapped_column(String(200))
    items: Mapped[int] = mapped_column(Integer)
    base_score: Mapped[float]
    candidate_score: Mapped[float]
    p_value: Mapped[float | None]
    ci_low: Mapped[float | None]
    ci_high: Mapped[float | None]
    decision: Mapped[str] = mapped_column(String(32))
    details: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class UsageRow(Base):
    """Metered usage per tenant per day, for billing."""

    __tablename__ = "usage"

    tenant_id: Mapped[str] = mapped_column(
        TENANT, ForeignKey("tenants.slug", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    sessions: Mapped[int] = mapped_column(Integer, default=0)
    tokens_in: Mapped[int] = mapped_column(BigInteger, default=0)
    tokens_out: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_usd: Mapped[Decimal] = mapped_column(Numeric(14, 6), default=Decimal(0))
    agent_seconds: Mapped[float] = mapped_column(default=0.0, server_default="0")
    fine_tuning_tokens: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class TenantWorkspaceRow(Base):
    """The git worktree a tenant's sessions use on one agent server: one per tenant and server,
    so that waves in different processes agree on it (the key decides a race)."""

    __tablename__ = "tenant_workspaces"

    tenant_id: Mapped[str] = mapped_column(
        TENANT, ForeignKey("tenants.slug", ondelete="CASCADE"), primary_key=True
    )
    server_url: Mapped[str] = mapped_column(String(2000), primary_key=True)
    directory: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime]


class ModelPromotionRow(Base):
    """The models promoted for a tenant's sessions; the current one has no `retired_at`."""

    __tablename__ = "model_promotions"
    __table_args__ = (Index("ix_model_promotions_tenant_current", "tenant_id", "retired_at"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = tenant_fk()
    model: Mapped[str] = mapped_column(String(200))
    job_id: Mapped[str | None] = mapped_column(
        ID, ForeignKey("fine_tuning_jobs.id", ondelete="SET NULL")
    )
    evaluation_id: Mapped[str | None] = mapped_column(
        ID, ForeignKey("evaluations.id", ondelete="SET NULL")
    )
    reason: Mapped[str] = mapped_column(Text, default="")
    promoted_at: Mapped[datetime]
    retired_at: Mapped[datetime | None]


class CodeRepositoryRow(Base):
    """A tenant's code repository (0007): its URL never holds credentials, only the name of the
    tenant secret that does."""

    __tablename__ = "code_repositories"

    tenant_id: Mapped[str] = mapped_column(
        TENANT, ForeignKey("tenants.slug", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    default_ref: Mapped[str] = mapped_column(String(250))
    credentials_secret: Mapped[str | None] = mapped_column(String(100))
    setup_script: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]


class AgentServerClaimRow(Base):
    """An agent server (its `domain.agent_server_address.server_key`) claimed by the one tenant
    it serves. The primary key decides between tenants: under row-level security a tenant sees
    only its own claims, yet another tenant's claim of the same key still fails the insert."""

    __tablename__ = "agent_server_claims"

    server_key: Mapped[str] = mapped_column(String(300), primary_key=True)
    tenant_id: Mapped[str] = tenant_fk()
    created_at: Mapped[datetime]


class TenantSecretRow(Base):
    """A tenant's secret, sealed (`resources.secret_box`): the column never holds clear text."""

    __tablename__ = "tenant_secrets"

    tenant_id: Mapped[str] = mapped_column(
        TENANT, ForeignKey("tenants.slug", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    sealed: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class WebhookEndpointRow(Base):
    """A tenant's webhook URL; its signing secret sealed (`resources.secret_box`)."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = tenant_fk()
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list[str]] = mapped_column(JsonDocument)
    description: Mapped[str] = mapped_column(String(200), default="")
    secret_sealed: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class WebhookDeliveryRow(Base):
    """The deliveries outbox: written with the change it tells of, drained by the sensor."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_due", "tenant_id", "status", "next_attempt_at"),
        # The tenants with a delivery due, across tenants (the sensor's finder; migration 0018).
        Index("ix_webhook_deliveries_pending_due", "status", "next_attempt_at", "tenant_id"),
        Index("ix_webhook_deliveries_endpoint", "endpoint_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = tenant_fk()
    endpoint_id: Mapped[str] = mapped_column(
        ID, ForeignKey("webhook_endpoints.id", ondelete="CASCADE")
    )
    event_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(STATUS)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    history: Mapped[list[dict[str, Any]]] = mapped_column(JsonDocument)
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]


class RuntimeRow(Base):
    """A tenant's managed OpenCode runtime on a host (domain.runtime; migration 0012)."""

    __tablename__ = "runtimes"
    __table_args__ = (Index("ix_runtimes_host_status", "host", "status"),)

    tenant_id: Mapped[str] = mapped_column(
        TENANT, ForeignKey("tenants.slug", ondelete="CASCADE"), primary_key=True
    )
    host: Mapped[str] = mapped_column(String(255), primary_key=True)
    os_user: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(STATUS)
    sandboxed: Mapped[bool] = mapped_column(Boolean)
    port: Mapped[int | None] = mapped_column(Integer)
    pid: Mapped[int | None] = mapped_column(Integer)
    process_start: Mapped[int | None] = mapped_column(BigInteger)
    agent_id: Mapped[str | None] = mapped_column(ID)
    reason: Mapped[str] = mapped_column(Text, default="")
    restarts: Mapped[int] = mapped_column(Integer, default=0)
    resident_mb: Mapped[int | None] = mapped_column(Integer)
    started_at: Mapped[datetime | None]
    last_busy_at: Mapped[datetime | None]
    waiting_since: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime]


# After every table is declared (it was once above `RuntimeRow`, which it then left out).
TENANT_TABLES: tuple[str, ...] = tuple(
    table.name for table in Base.metadata.sorted_tables if "tenant_id" in table.columns
)
