"""Managed runtimes: each tenant's own OpenCode server on this host, started on demand, stopped
when idle, bounded by the host's memory budget, restarted when it dies.

`start` makes the tenant's OS user (first use), a random server password, launches the server in
its sandbox (`resources.runtime_host`), and attaches it as the tenant's managed agent with the
password sealed (`resources.secret_box`): the password lives in the server's environment and,
sealed, in the database; never in argv or logs. With no slot left in the memory budget the
runtime is recorded WAITING_FOR_SLOT (`RuntimeSlotUnavailable`): the tenant's sessions stay
queued in their wave (routing waits for an agent) and `session show` says why.

`reconcile` (the runtime sensor's tick, any caller's "now"): for every tenant with runtimes
enabled (a runtime record exists), in two passes so that slots freed are reused the same tick:
1. a LIVE runtime whose process is gone is restarted (its sessions are not adopted by the new
   server: their supervisor finds the agent session gone and they take the ORPHANED -> retry
   path); one with no session for the idle period is stopped;
2. a tenant with work (a pending or active session) and no live runtime gets one, the longest
   waiting first, while the budget has slots.
The operator (the control plane) starts, stops, forgets and reconciles any tenant's runtime; a
tenant's LEAD (or ADMIN) may start and stop its own (the API), any of its callers read it.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from domain.caller import Caller
from domain.clock import utcnow
from domain.errors import InvalidSetting, NotFound
from domain.runtime import (
    WAITING_FOR_SLOT_REASON,
    Runtime,
    RuntimeSlotUnavailable,
    RuntimeStatus,
    os_user_for,
)
from domain.session import ACTIVE_STATES, SessionStatus
from domain.tenant import Role
from resources.database import Database, tenant_scope, unit_of_work
from resources.database.repositories.runtimes import tenants_with_runtimes
from resources.runtime_host.host import CONFIG_VAR, RuntimeHost
from resources.secret_box import SecretBox
from services.agent_registry import AgentRegistry

logger = logging.getLogger(__name__)
PASSWORD_BYTES = 32
HELD = (RuntimeStatus.LIVE, RuntimeStatus.STARTING)  # what takes a slot of the budget
CONTROL_ROLE = Role.LEAD  # a tenant's callers who may start and stop its own runtime
WORK_STATES = frozenset({SessionStatus.PENDING, *ACTIVE_STATES})


@dataclass
class Reconciled:
    """What one reconcile did, tenant slugs per action (for the sensor's summary)."""

    restarted: list[str] = field(default_factory=list)
    stopped_idle: list[str] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        parts = [
            f"{name} {', '.join(tenants)}"
            for name, tenants in (
                ("restarted", self.restarted),
                ("stopped idle", self.stopped_idle),
                ("started", self.started),
                ("waiting for a slot", self.waiting),
            )
            if tenants
        ]
        parts += [f"{tenant} failed: {reason}" for tenant, reason in self.failed.items()]
        return "; ".join(parts) or "nothing to do"


class RuntimeManager:
    def __init__(
        self,
        database: Database,
        host: RuntimeHost,
        registry: AgentRegistry,
        secret_box: SecretBox,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._database = database
        self._host = host
        self._registry = registry
        self._box = secret_box
        self._clock = clock

    # -- commands -----------------------------------------------------------------------------

    def start(self, caller: Caller, tenant_id: str, config_json: str | None = None) -> Runtime:
        """The tenant's live runtime on this host, started now unless it is live already
        (`RuntimeSlotUnavailable`, recorded as a wait, when the budget has no slot)."""
        caller.require_tenant(tenant_id)
        caller.require(CONTROL_ROLE, "starting a runtime")
        config = config_json or self._host.settings.opencode_config_json
        if not config:
            raise InvalidSetting(
                CONFIG_VAR, "no OpenCode config for runtimes (or --opencode-config)"
            )
        sandboxed = self._host.sandboxed()
        runtime = self._claim_slot(tenant_id, sandboxed)
        if runtime.status is RuntimeStatus.LIVE:
            return runtime
        try:
            user = self._host.prepare(tenant_id, sandboxed)
            password = secrets.token_urlsafe(PASSWORD_BYTES)
            server = self._host.launch(user, password, config, sandboxed)
        except Exception as error:
            self._settle(tenant_id, RuntimeStatus.STOPPED, f"start failed: {error}"[:2000])
            raise
        try:
            agent = self._registry.attach_runtime(
                Caller.operator(), tenant_id, server.url, self._box.seal(password)
            )
        except Exception as error:  # e.g. ServerInUse: its address is another tenant's
            self._host.stop(server.handle.pid, server.handle.start_ticks)
            self._settle(tenant_id, RuntimeStatus.STOPPED, f"not registered: {error}"[:2000])
            raise
        del password
        now = self._clock()
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            runtime = self._required(uow.runtimes.get_for_update(self._host.name), tenant_id)
            runtime.status = RuntimeStatus.STOPPED  # the fields below first, then LIVE
            runtime.pid, runtime.process_start = server.handle.pid, server.handle.start_ticks
            runtime.port, runtime.agent_id = server.port, agent.id
            runtime.started_at = runtime.last_busy_at = now
            runtime.waiting_since, runtime.reason = None, ""
            runtime.status = RuntimeStatus.LIVE
            uow.runtimes.save(runtime)
        logger.info("runtime of tenant %s live on %s (pid %s)", tenant_id, server.url, runtime.pid)
        return runtime

    def stop(
        self, caller: Caller, tenant_id: str, reason: str = "stopped by the operator"
    ) -> Runtime:
        """Stop the tenant's runtime here (its agent deactivated first, so nothing new is routed
        to it); the record stays, so work starts it again (`forget` disables that)."""
        caller.require_tenant(tenant_id)
        caller.require(CONTROL_ROLE, "stopping a runtime")
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            runtime = uow.runtimes.get(self._host.name)
        if runtime is None:
            raise NotFound("runtime", f"{tenant_id} on {self._host.name}")
        if runtime.agent_id:
            try:
                agent = self._registry.get(Caller.operator(), tenant_id, runtime.agent_id).agent
                if agent.active:
                    self._registry.deactivate(Caller.operator(), tenant_id, agent.id)
            except NotFound:
                pass
        if runtime.pid is not None and runtime.process_start is not None:
            self._host.stop(runtime.pid, runtime.process_start)
        return self._settle(tenant_id, RuntimeStatus.STOPPED, reason)

    def stop_any(self, caller: Caller, tenant_id: str, reason: str) -> bool:
        """Stop the tenant's runtime here if it has one (a deleted tenant's); False if none."""
        try:
            self.stop(caller, tenant_id, reason)
        except NotFound:
            return False
        return True

    def retire(self, caller: Caller, tenant_id: str, reason: str) -> tuple[bool, list[str]]:
        """A deleted tenant's runtime here stopped (if it has one) and its directories under the
        runtime root removed: (stopped, the paths removed)."""
        stopped = self.stop_any(caller, tenant_id, reason)
        removed = self._host.remove_tenant(tenant_id)
        if removed is not None:
            logger.info(
                "tenant %s: its runtime directory on %s removed", tenant_id, self._host.name
            )
        return stopped, [str(removed)] if removed is not None else []

    def forget(self, caller: Caller, tenant_id: str) -> None:
        """Stop and disable the tenant's managed runtime here (no start on demand)."""
        caller.require_operator("disabling a runtime")
        self.stop(caller, tenant_id, "disabled")
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            uow.runtimes.remove(self._host.name)

    # -- reads --------------------------------------------------------------------------------

    def get(self, caller: Caller, tenant_id: str) -> Runtime:
        """The tenant's runtime on this host (`NotFound` when it has none here)."""
        caller.require_tenant(tenant_id)
        caller.require(Role.VIEWER, "reading runtimes")
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            return self._required(uow.runtimes.get(self._host.name), tenant_id)

    def list(self, caller: Caller, tenant_id: str | None = None) -> list[Runtime]:
        """The tenant's runtimes, or (operator, no tenant) every tenant's."""
        if tenant_id is None:
            caller.require_operator("listing every tenant's runtimes")
            with unit_of_work(self._database) as uow:
                tenants = tenants_with_runtimes(uow.session)
        else:
            caller.require_tenant(tenant_id)
            caller.require(Role.VIEWER, "reading runtimes")
            tenants = [tenant_id]
        found: list[Runtime] = []
        for tenant in tenants:
            with tenant_scope(tenant), unit_of_work(self._database) as uow:
                found += uow.runtimes.list()
        return found

    # -- the sensor's tick --------------------------------------------------------------------

    def reconcile(self, caller: Caller, max_starts: int | None = None) -> Reconciled:
        """One pass (see the module docstring); at most `max_starts` new runtimes (a start
        takes seconds: a sensor tick bounds it, the rest wait for the next tick)."""
        caller.require_operator("reconciling runtimes")
        report = Reconciled()
        now = self._clock()
        idle_after = timedelta(seconds=self._host.settings.idle_seconds)
        with unit_of_work(self._database) as uow:
            tenants = tenants_with_runtimes(uow.session)
        wanting: list[Runtime] = []
        for tenant in tenants:
            with tenant_scope(tenant), unit_of_work(self._database) as uow:
                runtime = uow.runtimes.get(self._host.name)
                busy = uow.sessions.count_active() > 0
                has_work = busy or bool(uow.sessions.list({SessionStatus.PENDING}, limit=1))
            if runtime is None:
                continue
            if runtime.status is RuntimeStatus.LIVE:
                self._tend_live(runtime, busy, now, idle_after, report)
            elif has_work:
                wanting.append(runtime)
        wanting.sort(key=lambda r: (r.waiting_since or now, r.tenant_id))
        for runtime in wanting[:max_starts]:
            self._start_for_work(runtime.tenant_id, report)
        return report

    def _tend_live(
        self, runtime: Runtime, busy: bool, now: datetime, idle_after: timedelta, report: Reconciled
    ) -> None:
        tenant = runtime.tenant_id
        assert runtime.pid is not None and runtime.process_start is not None
        if not self._host.alive(runtime.pid, runtime.process_start):
            logger.warning("runtime of tenant %s died (pid %s); restarting", tenant, runtime.pid)
            self._settle(tenant, RuntimeStatus.STOPPED, "died", restarted=True)
            if self._start_for_work(tenant, report):
                report.restarted.append(tenant)
                report.started.remove(tenant)
            return
        with tenant_scope(tenant), unit_of_work(self._database) as uow:
            current = uow.runtimes.get(self._host.name)
            if current is None or current.status is not RuntimeStatus.LIVE:
                return
            current.resident_mb = self._host.resident_mb(runtime.pid)
            if busy:
                current.last_busy_at = now
            uow.runtimes.save(current)
        if not busy and current.idle_at(now, idle_after):
            self.stop(Caller.operator(), tenant, f"idle for {idle_after.total_seconds():g}s")
            report.stopped_idle.append(tenant)

    def _start_for_work(self, tenant: str, report: Reconciled) -> bool:
        try:
            self.start(Caller.operator(), tenant)
        except RuntimeSlotUnavailable:
            report.waiting.append(tenant)
            return False
        except Exception as error:  # one tenant's failure must not stop the others'
            logger.exception("runtime of tenant %s did not start", tenant)
            report.failed[tenant] = type(error).__name__
            return False
        report.started.append(tenant)
        return True

    # -- inside -------------------------------------------------------------------------------

    def _claim_slot(self, tenant_id: str, sandboxed: bool) -> Runtime:
        """The tenant's record, STARTING (a slot taken), or LIVE as it is; a wait recorded and
        `RuntimeSlotUnavailable` when the budget is full."""
        held = self._held_memory(exclude=tenant_id)
        budget = self._host.settings.budget
        now = self._clock()
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            runtime = uow.runtimes.get_for_update(self._host.name)
            if runtime is None:
                runtime = uow.runtimes.add(
                    Runtime(
                        tenant_id=tenant_id,
                        host=self._host.name,
                        os_user=os_user_for(tenant_id),
                        sandboxed=sandboxed,
                    )
                )
            if runtime.status is RuntimeStatus.LIVE:
                assert runtime.pid is not None and runtime.process_start is not None
                if self._host.alive(runtime.pid, runtime.process_start):
                    return runtime
            if not budget.has_room(held):
                runtime.status = RuntimeStatus.WAITING_FOR_SLOT
                runtime.waiting_since = runtime.waiting_since or now
                runtime.pid = runtime.port = runtime.process_start = None
                runtime.reason = WAITING_FOR_SLOT_REASON
                uow.runtimes.save(runtime)
                waiting = RuntimeSlotUnavailable(
                    tenant_id, len(held), budget.held_mb(held), budget.memory_mb
                )
            else:
                runtime.status = RuntimeStatus.STARTING
                runtime.pid = runtime.port = runtime.process_start = None
                runtime.sandboxed = sandboxed
                uow.runtimes.save(runtime)
                return runtime
        raise waiting

    def _held_memory(self, exclude: str) -> list[int | None]:
        """The resident MB of every other live (or starting) runtime on this host, measured
        now (None: not measurable, counted as an idle runtime)."""
        with unit_of_work(self._database) as uow:
            tenants = tenants_with_runtimes(uow.session)
        held: list[int | None] = []
        for tenant in tenants:
            if tenant == exclude:
                continue
            with tenant_scope(tenant), unit_of_work(self._database) as uow:
                runtime = uow.runtimes.get(self._host.name)
            if runtime is not None and runtime.status in HELD:
                held.append(self._host.resident_mb(runtime.pid) if runtime.pid else None)
        return held

    def _settle(
        self, tenant_id: str, status: RuntimeStatus, reason: str, restarted: bool = False
    ) -> Runtime:
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            runtime = self._required(uow.runtimes.get_for_update(self._host.name), tenant_id)
            runtime.status = status
            runtime.pid = runtime.port = runtime.process_start = None
            runtime.resident_mb = None
            runtime.reason = reason
            runtime.restarts += restarted
            uow.runtimes.save(runtime)
        return runtime

    def _required(self, runtime: Runtime | None, tenant_id: str) -> Runtime:
        if runtime is None:
            raise NotFound("runtime", f"{tenant_id} on {self._host.name}")
        return runtime


def runtime_wait(database: Database, caller: Caller, tenant_id: str) -> str | None:
    """Why the tenant's sessions wait for a runtime, if they do (`session show`); no host
    settings needed."""
    caller.require_tenant(tenant_id)
    caller.require(Role.VIEWER, "reading runtimes")
    with tenant_scope(tenant_id), unit_of_work(database) as uow:
        runtimes = uow.runtimes.list()
    for runtime in runtimes:
        if runtime.status is RuntimeStatus.WAITING_FOR_SLOT:
            since = (
                runtime.waiting_since.isoformat(timespec="seconds")
                if runtime.waiting_since
                else "?"
            )
            return f"{WAITING_FOR_SLOT_REASON} on {runtime.host} since {since}"
    return None
