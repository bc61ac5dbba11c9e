"""Managed runtimes: a tenant's own OpenCode server, run by the platform on a host.

One runtime per tenant and host: a dedicated OS user per tenant, a sandbox, a random server
password held (sealed) by the control plane, registered as that tenant's agent. Runtimes start
when the tenant has work and stop after an idle period; the runtimes live on a host are bounded
by a memory budget (an idle `opencode serve` holds ~300 MB), and a tenant with no slot waits
(WAITING_FOR_SLOT: its sessions stay queued, not failed).
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import Field, model_validator

from domain.clock import utcnow
from domain.domain_model import DomainModel, ValueObject
from domain.errors import DomainError

OS_USER_PREFIX = "indorch-t-"
OS_USER_MAX_LENGTH = 32  # useradd's limit
RUNTIME_AGENT_NAME = "managed-runtime"
WAITING_FOR_SLOT_REASON = "waiting for a runtime slot"


class RuntimeStatus(StrEnum):
    STARTING = "STARTING"
    LIVE = "LIVE"
    WAITING_FOR_SLOT = "WAITING_FOR_SLOT"  # wanted, but the host's memory budget is full
    STOPPED = "STOPPED"


class RuntimeSlotUnavailable(DomainError):
    """The host's memory budget has no room for another runtime now; the tenant waits."""

    def __init__(self, tenant_id: str, live: int, held_mb: int, budget_mb: int) -> None:
        self.tenant_id = tenant_id
        self.live = live
        self.held_mb = held_mb
        self.budget_mb = budget_mb
        super().__init__(
            f"tenant {tenant_id!r} is {WAITING_FOR_SLOT_REASON}: {live} runtimes on this host "
            f"hold {held_mb} MB of its {budget_mb} MB memory budget"
        )


class SandboxUnavailable(DomainError):
    """Runtimes cannot be isolated on this host (not root, no bubblewrap, no useradd)."""

    def __init__(self, missing: str) -> None:
        self.missing = missing
        super().__init__(
            f"tenant runtimes cannot be sandboxed here: {missing}. Without the sandbox a "
            f"tenant's agent runs as the platform's own user and can read every other tenant's "
            f"files, the platform's state and secrets; refused (allow it only for development "
            f"with INDORCH_RUNTIME_ALLOW_UNSANDBOXED=1)"
        )


def os_user_for(tenant_id: str) -> str:
    """The tenant's OS user: `indorch-t-<slug>`, a hash in place of the slug's tail when the
    name would be too long (so two long slugs never share a user)."""
    name = OS_USER_PREFIX + tenant_id
    if len(name) <= OS_USER_MAX_LENGTH:
        return name
    digest = hashlib.sha256(tenant_id.encode()).hexdigest()[:8]
    keep = OS_USER_MAX_LENGTH - len(OS_USER_PREFIX) - len(digest) - 1
    return f"{OS_USER_PREFIX}{tenant_id[:keep].rstrip('-')}-{digest}"


class RuntimeBudget(ValueObject):
    """How many runtimes fit on a host: its memory budget, against what the live runtimes hold
    (each one's measured resident size, at least `runtime_mb`, an idle runtime's size) plus
    `runtime_mb` for the one to start."""

    memory_mb: int = Field(ge=0)
    runtime_mb: int = Field(gt=0)

    @property
    def slots(self) -> int:
        """Runtimes that fit when all are idle (the most there can be)."""
        return self.memory_mb // self.runtime_mb

    def has_slot(self, live: int) -> bool:
        return live < self.slots

    def held_mb(self, resident: list[int | None]) -> int:
        return sum(max(measured or 0, self.runtime_mb) for measured in resident)

    def has_room(self, resident: list[int | None]) -> bool:
        """Room for one more runtime next to the live ones (`resident`: their measured MB)."""
        return self.held_mb(resident) + self.runtime_mb <= self.memory_mb


class Runtime(DomainModel):
    """The platform's record of one tenant's runtime on one host (no secret in it: the server
    password is sealed on the runtime's agent)."""

    tenant_id: str
    host: str = Field(min_length=1, max_length=255)
    os_user: str = Field(min_length=1, max_length=OS_USER_MAX_LENGTH)
    status: RuntimeStatus = RuntimeStatus.STOPPED
    sandboxed: bool = True
    port: int | None = None
    pid: int | None = None
    process_start: int | None = None  # the process's start time (clock ticks): pid reuse guard
    agent_id: str | None = None
    reason: str = ""
    restarts: int = Field(default=0, ge=0)
    resident_mb: int | None = None
    started_at: datetime | None = None
    last_busy_at: datetime | None = None
    waiting_since: datetime | None = None
    version: int = Field(default=1, ge=1)
    created_at: datetime = Field(default_factory=utcnow)

    @model_validator(mode="after")
    def _live_has_process(self) -> Runtime:
        if self.status is RuntimeStatus.LIVE and (self.pid is None or self.port is None):
            raise ValueError("a LIVE runtime has a pid and a port")
        return self

    @property
    def server_url(self) -> str | None:
        return f"http://127.0.0.1:{self.port}" if self.port else None

    def idle_at(self, now: datetime, idle_after: timedelta) -> bool:
        """LIVE with no session on it since `idle_after` (the caller knows it has none now)."""
        if self.status is not RuntimeStatus.LIVE:
            return False
        since = self.last_busy_at or self.started_at or self.created_at
        return now - since >= idle_after
