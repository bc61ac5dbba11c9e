"""This host, as the runtime manager sees it: tenant users, sandboxed servers, their processes.

Settings (environment):
- ``INDORCH_RUNTIME_ROOT``: where tenant HOMEs and workspaces live (default
  ``/var/lib/indorch/runtimes``; root-owned, 0711);
- ``INDORCH_RUNTIME_MEMORY_BUDGET_MB``: memory for runtimes on this host (default 4096);
- ``INDORCH_RUNTIME_MEMORY_MB``: one runtime's resident size for the budget (default 300, an
  idle `opencode serve` measured by bench/runtimes.py);
- ``INDORCH_RUNTIME_IDLE_SECONDS``: a runtime with no session that long is stopped (default 600);
- ``INDORCH_RUNTIME_OPENCODE_CONFIG``: a file with the OpenCode config runtimes get (provider,
  models); ``--opencode-config`` of ``indorch runtime start`` overrides it;
- ``INDORCH_RUNTIME_NETWORK_ALLOW`` / ``INDORCH_RUNTIME_BLOCKED_NETWORKS``: what a runtime may
  reach on the loopback besides its model providers / more networks it may not reach
  (`resources.runtime_host.network_rules`);
- ``INDORCH_RUNTIME_ALLOW_UNSANDBOXED=1``: where the sandbox (or its firewall rules) cannot run
  (not root, no bubblewrap, no iptables), run runtimes without it (development only: no
  isolation at all). Default: refuse.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from domain.errors import InvalidSetting
from domain.runtime import RuntimeBudget, SandboxUnavailable
from resources.runtime_host import network_rules, processes
from resources.runtime_host.opencode_runtime import LaunchedServer, launch_server
from resources.runtime_host.processes import ProcessHandle
from resources.runtime_host.sandbox import sandbox_problem
from resources.runtime_host.tenant_users import (
    TenantUser,
    ensure_tenant_user,
    remove_tenant_directory,
)

logger = logging.getLogger(__name__)
ROOT_VAR = "INDORCH_RUNTIME_ROOT"
BUDGET_VAR = "INDORCH_RUNTIME_MEMORY_BUDGET_MB"
RUNTIME_MB_VAR = "INDORCH_RUNTIME_MEMORY_MB"
IDLE_VAR = "INDORCH_RUNTIME_IDLE_SECONDS"
CONFIG_VAR = "INDORCH_RUNTIME_OPENCODE_CONFIG"
UNSANDBOXED_VAR = "INDORCH_RUNTIME_ALLOW_UNSANDBOXED"
DEFAULT_ROOT = Path("/var/lib/indorch/runtimes")
DEFAULT_BUDGET = RuntimeBudget(memory_mb=4096, runtime_mb=300)


@dataclass(frozen=True)
class RuntimeSettings:
    root: Path = DEFAULT_ROOT
    budget: RuntimeBudget = DEFAULT_BUDGET
    idle_seconds: float = 600.0
    opencode_config_json: str | None = None
    allow_unsandboxed: bool = False

    @classmethod
    def from_environment(cls) -> RuntimeSettings:
        config_path = os.environ.get(CONFIG_VAR)
        config_json = None
        if config_path:
            try:
                config_json = Path(config_path).read_text()
            except OSError as error:
                raise InvalidSetting(CONFIG_VAR, f"cannot read it: {error.strerror}") from None
        return cls(
            root=Path(os.environ.get(ROOT_VAR) or DEFAULT_ROOT),
            budget=RuntimeBudget(
                memory_mb=_number(BUDGET_VAR, 4096), runtime_mb=_number(RUNTIME_MB_VAR, 300)
            ),
            idle_seconds=float(_number(IDLE_VAR, 600)),
            opencode_config_json=config_json,
            allow_unsandboxed=os.environ.get(UNSANDBOXED_VAR) == "1",
        )


def _number(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidSetting(name, "not a whole number") from None
    if value < 0:
        raise InvalidSetting(name, "must not be negative")
    return value


class RuntimeHost:
    """Tenant users, sandboxed OpenCode servers and their processes on this machine."""

    def __init__(self, settings: RuntimeSettings) -> None:
        self.settings = settings
        self.name = socket.gethostname()

    def sandboxed(self) -> bool:
        """True when runtimes are isolated here; False only when explicitly allowed (with a
        warning naming what is lost); otherwise `SandboxUnavailable`."""
        problem = sandbox_problem() or network_rules.network_problem()
        if problem is None:
            return True
        if not self.settings.allow_unsandboxed:
            raise SandboxUnavailable(problem)
        logger.warning(
            "RUNNING TENANT RUNTIMES WITHOUT A SANDBOX (%s=1): %s. Each tenant's agent runs as "
            "the platform's user: it can read every other tenant's files, the platform's state, "
            "database file and secret key, and see every process.",
            UNSANDBOXED_VAR,
            problem,
        )
        return False

    def prepare(self, tenant_id: str, sandboxed: bool) -> TenantUser:
        if sandboxed:
            return ensure_tenant_user(tenant_id, self.settings.root)
        tenant_dir = self.settings.root / tenant_id
        home, workspaces = tenant_dir / "home", tenant_dir / "workspaces"
        for directory in (home, workspaces):
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        return TenantUser(f"unsandboxed-{tenant_id}", os.getuid(), os.getgid(), home, workspaces)

    def launch(
        self, user: TenantUser, password: str, config_json: str, sandboxed: bool
    ) -> LaunchedServer:
        if sandboxed:  # before anything runs as the tenant: its network confined first
            network_rules.confine(
                user.uid,
                network_rules.needed_endpoints(config_json),
                network_rules.blocked_networks(),
            )
        return launch_server(user, password, config_json, sandboxed=sandboxed)

    def remove_tenant(self, tenant_id: str) -> Path | None:
        """A deleted tenant's directory on this host gone (its runtime stopped first)."""
        return remove_tenant_directory(tenant_id, self.settings.root)

    @staticmethod
    def alive(pid: int, start: int) -> bool:
        return processes.is_alive(ProcessHandle(pid, start))

    @staticmethod
    def stop(pid: int, start: int) -> None:
        processes.stop(ProcessHandle(pid, start))

    @staticmethod
    def resident_mb(pid: int) -> int:
        return processes.resident_kb(pid) // 1024
