"""How a wave supervises its sessions: leases, polling, routing pace, workspaces, event batching.

Plain settings, so the configuration resource (resources/) and the supervisor (services/) share
them without the resource importing a service.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

# How long beyond its first sessions' time a wave may take on its tenant's new sessions (the
# supervision resource's default; a wave launched on submit is sized with it too).
DEFAULT_TOP_UP_SECONDS = 1800.0
# Free scratch slots kept per agent for the tenant's next sessions, and made ahead of them
# (services.workspace_slots).
DEFAULT_WARM_SLOTS_PER_AGENT = 4
# An agent's sessions in workspaces of their own in flight at once in a wave: each is an OpenCode
# instance on its server; a 300-session burst on 3 servers completed with 8 per agent and wedged
# the servers without a bound and with 24 (README, Performance).
DEFAULT_WORKSPACES_PER_AGENT = 8


@dataclass(frozen=True)
class SupervisionSettings:
    lease: timedelta = timedelta(seconds=60)
    renew_every: timedelta = timedelta(seconds=15)
    orphan_after_seconds: float = 15.0  # agent server unreachable this long: agent session lost
    poll_seconds: float = 1.0
    routing_wait_seconds: float = 2.0  # between routing attempts while every agent is full
    routing_refresh_seconds: float = 1.0  # agents and their load re-read at most this often
    tenant_workspaces: bool = True  # each tenant's sessions in its own worktree on a server
    # Each session without a repository in a scratch workspace of its own (on a repository it
    # always has its own worktree); then no tenant worktree is made on the servers. Off: the
    # tenant's sessions share its worktree on each server (one OpenCode instance per tenant
    # rather than per running session).
    session_workspaces: bool = True
    diff_settle_seconds: float = 2.0  # the server's diff may lag the session's idle this long
    # Idle with its answer unfinished and nothing more from the agent this long: the turn died
    # (its server restarted mid-answer); the session ends ORPHANED and is retried.
    interrupted_turn_seconds: float = 30.0
    # Starts in workspaces of their own in flight at once per agent, each until its agent answers
    # (the server sets the directory's instance up meanwhile); in the tenant's worktree, not paced.
    starts_per_agent: int = 8
    # An agent's sessions in workspaces of their own in flight at once in one wave (each an
    # OpenCode instance on its server); the rest wait for a slot to free. None: unbounded.
    workspaces_per_agent: int | None = DEFAULT_WORKSPACES_PER_AGENT
    event_flush_seconds: float = 0.25  # observational events wait at most this long (EventBatch)
    # External agents (EAP): each assignment POST waits this long, tried this many times with
    # a doubling pause; an agent silent past its heartbeat TTL leaves routing, and the
    # sessions it holds end ORPHANED (the retry sensor sends them elsewhere).
    external_timeout_seconds: float = 10.0
    external_attempts: int = 3
    external_retry_seconds: float = 1.0
    external_heartbeat_ttl_seconds: float = 60.0

    @property
    def in_tenant_workspaces(self) -> bool:
        """Whether sessions without a repository work in their tenant's worktree on a server."""
        return self.tenant_workspaces and not self.session_workspaces
