"""How sessions are dispatched and supervised: wave size, leases, timings. One place, typed."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg
from pydantic import Field

from domain.supervision_policy import (
    DEFAULT_TOP_UP_SECONDS,
    DEFAULT_WARM_SLOTS_PER_AGENT,
    DEFAULT_WORKSPACES_PER_AGENT,
    SupervisionSettings,
)


class SupervisionConfig(dg.ConfigurableResource):
    """Wave size 1 gives one Dagster run per session (for comparison); larger waves share one."""

    # A run process costs ~100 MB and seconds to start: waves are large and long-lived (top-up),
    # bounded by the tenant's quota (the dispatcher never claims beyond it).
    wave_size: int = Field(default=100, ge=1, le=2000)
    claim_lease_seconds: float = Field(
        default=600.0, gt=0, description="How long a claimed session waits for its wave run."
    )
    lease_seconds: float = Field(default=60.0, gt=0)
    renew_every_seconds: float = Field(default=15.0, gt=0)
    orphan_after_seconds: float = Field(default=15.0, gt=0)
    poll_seconds: float = Field(default=1.0, gt=0)
    retry_base_seconds: float = Field(
        default=5.0, gt=0, description="First retry's backoff; doubles per retry, with jitter."
    )
    tenant_workspaces: bool = Field(
        default=True,
        description="Run each tenant's sessions in a git worktree of its own on every agent "
        "server (agents of several tenants may share a server).",
    )
    session_workspaces: bool = Field(
        default=True,
        description="Give each session without a repository a scratch workspace of its own "
        "(sessions on a repository always have their own worktree); false: a tenant's sessions "
        "share its worktree on each server.",
    )
    warm_slots_per_agent: int = Field(
        default=DEFAULT_WARM_SLOTS_PER_AGENT,
        ge=0,
        le=50,
        description="Scratch workspaces (sessions' own) kept free per agent for the tenant's "
        "next sessions, their server's instance warm (0: none kept).",
    )
    workspaces_per_agent: int | None = Field(
        default=DEFAULT_WORKSPACES_PER_AGENT,
        ge=1,
        le=500,
        description="At most this many of an agent's sessions in workspaces of their own at once "
        "in one wave (each is an OpenCode instance on the agent's server: tens of MB and seconds "
        "of CPU to set up); the others wait and take the slot a finished session freed, its "
        "instance warm. Null: bounded only by the agent's capacity.",
    )
    warm_slots_ahead: bool = Field(
        default=False,
        description="The agent-health sensor makes and warms each live agent's scratch slots "
        "(`warm_slots_per_agent` of them) before the first sessions need them: one short prompt "
        "each with every tool denied, on the tenant's model. Off by default: it costs each "
        "agent's server a few CPU-seconds and an instance's memory per slot, for every tenant, "
        "used or not, and the tenant's model a short answer per slot.",
    )
    workspaces_per_health_tick: int = Field(
        default=10,
        ge=1,
        description="Tenant worktrees made, or scratch slots warmed, by the agent-health sensor "
        "ahead of waves in one tick (tenant worktrees: about, a tenant's servers are done "
        "together), so its first tick after many tenants' agents appeared stays within the "
        "sensor's evaluation timeout.",
    )
    starts_per_agent: int = Field(
        default=8,
        ge=1,
        description="Starts of sessions in workspaces of their own (each a new directory for "
        "the server to set up) in flight at once per agent, each until its agent answers; the "
        "rest wait their turn. Sessions in the tenant's worktree are not paced.",
    )
    top_up_seconds: float = Field(
        default=DEFAULT_TOP_UP_SECONDS,
        ge=0,
        description="How long beyond its first sessions' time a wave may take on its tenant's "
        "new sessions (0: waves never top up).",
    )
    top_up_every_seconds: float = Field(default=1.0, gt=0)
    linger_seconds: float = Field(
        default=10.0, ge=0, description="A topping-up wave with nothing to do ends after this."
    )
    left_behind_seconds: float = Field(
        default=10.0,
        ge=0,
        description="While a tenant has a live wave, the dispatcher claims only sessions due "
        "this long (those its waves did not take on).",
    )
    unroutable_timeout_seconds: float = Field(
        default=600.0,
        gt=0,
        description="How long a session waits PENDING for an agent that offers the capabilities "
        "it needs (none does) before it ends FAILED, not retried.",
    )

    def settings(self) -> SupervisionSettings:
        return SupervisionSettings(
            lease=timedelta(seconds=self.lease_seconds),
            renew_every=timedelta(seconds=self.renew_every_seconds),
            orphan_after_seconds=self.orphan_after_seconds,
            poll_seconds=self.poll_seconds,
            tenant_workspaces=self.tenant_workspaces,
            session_workspaces=self.session_workspaces,
            starts_per_agent=self.starts_per_agent,
            workspaces_per_agent=self.workspaces_per_agent,
        )

    @property
    def claim_lease(self) -> timedelta:
        return timedelta(seconds=self.claim_lease_seconds)

    @property
    def unroutable_wait(self) -> timedelta:
        return timedelta(seconds=self.unroutable_timeout_seconds)
