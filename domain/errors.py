"""Typed domain errors: one base, each carrying the facts the API and CLI need to answer clearly."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error the product raises on purpose."""


class InvalidInput(DomainError):
    """A value breaks a rule of MISSION.md (length, range, pattern)."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"invalid {field}: {reason}")


class InvalidSetting(DomainError):
    """A configuration value (an environment variable) cannot be used; names the variable and
    says what would work, never echoing the value (a URL may hold a password)."""

    def __init__(self, setting: str, reason: str) -> None:
        self.setting = setting
        self.reason = reason
        super().__init__(f"{setting}: {reason}")


class InvalidTransition(DomainError):
    """A state machine refused a move; names both states."""

    def __init__(self, machine: str, current: str, target: str) -> None:
        self.machine = machine
        self.current = current
        self.target = target
        super().__init__(f"{machine}: transition {current} -> {target} is not allowed")


class NotAllowedInStatus(InvalidTransition):
    """An action (pause, resume, ...) asked of a record whose status does not allow it; says
    which statuses do, where the bare table move ("PENDING -> RUNNING") would mislead."""

    def __init__(
        self, kind: str, key: str, current: str, action: str, allowed: list[str], target: str
    ) -> None:
        super().__init__(kind, current, target)
        self.key = key
        self.action = action
        self.allowed = allowed
        names = " or ".join([", ".join(allowed[:-1]), allowed[-1]] if allowed[:-1] else allowed)
        self.args = (f"{kind} {key!r} is {current}: only a {names} {kind} can be {action}",)


class IdempotencyKeyReused(DomainError):
    """A submit reused an idempotency key with another request: answering with the key's
    session would pass it off as the new request's."""

    def __init__(self, key: str, session_id: str) -> None:
        self.key = key
        self.session_id = session_id
        super().__init__(
            f"idempotency key {key!r} was given to session {session_id} for another request: "
            "use a new key for a new request"
        )


class RetriesExhausted(DomainError):
    """A retry was asked for an entity that used all its retries."""

    def __init__(self, entity_id: str, max_retries: int) -> None:
        self.entity_id = entity_id
        self.max_retries = max_retries
        super().__init__(f"{entity_id} has used all {max_retries} retries")


class NotFound(DomainError):
    """The record does not exist for the current tenant (another tenant's record is 'not found')."""

    def __init__(self, kind: str, key: str) -> None:
        self.kind = kind
        self.key = key
        super().__init__(f"{kind} {key!r} not found")


class AlreadyExists(DomainError):
    """A unique key (tenant slug, user email, ...) is taken."""

    def __init__(self, kind: str, key: str) -> None:
        self.kind = kind
        self.key = key
        super().__init__(f"{kind} {key!r} already exists")


class ConcurrentModification(DomainError):
    """A conditional update found another status or version than expected; nothing was written."""

    def __init__(self, kind: str, key: str, expected_status: str, expected_version: int) -> None:
        self.kind = kind
        self.key = key
        self.expected_status = expected_status
        self.expected_version = expected_version
        super().__init__(
            f"{kind} {key!r} changed concurrently "
            f"(expected status {expected_status} at version {expected_version})"
        )


class TenantNotSet(DomainError):
    """A tenant-scoped operation ran with no current tenant: refused, never "all tenants"."""

    def __init__(self, operation: str = "tenant-scoped query") -> None:
        self.operation = operation
        super().__init__(f"{operation} needs a current tenant, and none is set")


class InactiveTenant(DomainError):
    """Work was asked of a tenant that is deactivated."""

    def __init__(self, slug: str) -> None:
        self.slug = slug
        super().__init__(f"tenant {slug!r} is not active")


class TenantBusy(DomainError):
    """A tenant with sessions under way cannot be deleted: its waves would lose their
    worktrees under running agents."""

    def __init__(self, slug: str, active_sessions: int) -> None:
        self.slug = slug
        self.active_sessions = active_sessions
        plural = "s" if active_sessions != 1 else ""
        super().__init__(
            f"tenant {slug!r} has {active_sessions} active session{plural} (queued, running or "
            "paused): end them first (`indorch session cancel`), then delete the tenant"
        )


class AgentBusy(DomainError):
    """An agent with sessions on it cannot be removed: they would lose their agent mid-run."""

    def __init__(self, agent_id: str, active_sessions: int) -> None:
        self.agent_id = agent_id
        self.active_sessions = active_sessions
        plural = "s" if active_sessions != 1 else ""
        super().__init__(
            f"agent {agent_id!r} has {active_sessions} session{plural} on it (queued, running, "
            "degraded or paused): drain it (`indorch agent drain`) and let them end, or cancel "
            "them, then remove it"
        )


class TenantMismatch(DomainError):
    """A record of one tenant was handed to a repository scoped to another: refused."""

    def __init__(self, scoped: str, record_tenant: str) -> None:
        self.scoped = scoped
        self.record_tenant = record_tenant
        super().__init__(
            f"record belongs to tenant {record_tenant!r} but the current tenant is {scoped!r}"
        )


class TokenBudgetExceeded(DomainError):
    """The tenant used its monthly token budget: new work is refused until the month turns."""

    def __init__(self, tenant_id: str, used: int, budget: int) -> None:
        self.tenant_id = tenant_id
        self.used = used
        self.budget = budget
        super().__init__(
            f"tenant {tenant_id!r} used {used:,} of its {budget:,} monthly tokens: "
            "new sessions are refused until next month or a higher budget"
        )


class NoAgentAvailable(DomainError):
    """No registered agent can take the work now; `reasons` says why for each agent."""

    def __init__(self, required: list[str], reasons: dict[str, str]) -> None:
        self.required = required
        self.reasons = reasons
        detail = "; ".join(f"{agent}: {why}" for agent, why in sorted(reasons.items()))
        need = ", ".join(required) or "no special capability"
        super().__init__(f"no agent available (needs {need})" + (f": {detail}" if detail else ""))


class PermissionDenied(DomainError):
    """The caller's role is below what the action needs (the API answers 403)."""

    def __init__(self, action: str, needed: str, role: str) -> None:
        self.action = action
        self.needed = needed
        self.role = role
        super().__init__(f"{action} needs the role {needed} or higher; the caller is {role}")


class SecretUnreadable(DomainError):
    """A secret at rest cannot be opened with the configured key (another key, or altered); says
    which secret, never its content."""

    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(f"{what}: cannot be decrypted with the configured secret key")


class PromotionRefused(DomainError):
    """A model is promoted only on an evaluation that found it better; says what it found."""

    def __init__(self, evaluation_id: str, decision: str, reason: str) -> None:
        self.evaluation_id = evaluation_id
        self.decision = decision
        super().__init__(f"evaluation {evaluation_id} decided {decision}: {reason}")


class ServerInUse(DomainError):
    """An agent server already serves another tenant: one runtime serves one tenant, whose files,
    sessions and secrets another tenant's agent on it could reach. Names neither that tenant nor
    its agent."""

    def __init__(self) -> None:
        super().__init__(
            "the server is in use by another tenant: a runtime serves one tenant "
            "(start or register a server of this tenant's own)"
        )


class KeyRefused(DomainError):
    """An API key does not authenticate: unknown, revoked, or its tenant or user is deleted,
    deactivated or suspended. One answer for all (the API's 401): which one is not told to the
    presenter, and the key is never echoed."""

    def __init__(self) -> None:
        super().__init__(
            "API key refused: unknown or revoked, or its tenant or user is no longer active"
        )


class AgentTokenRefused(KeyRefused):
    """An external agent's token does not authenticate for the tenant named (unknown, another
    tenant's, or its agent removed): one answer for all (401), the token never echoed."""

    def __init__(self) -> None:
        DomainError.__init__(self, "agent token refused: unknown, or not an agent of this tenant")
