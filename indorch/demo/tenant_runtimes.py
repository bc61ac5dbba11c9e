"""The demo's tenant runtimes: each tenant's own managed OpenCode server, started as
`indorch runtime start` starts one (its own OS user `indorch-t-<tenant>`, made on first use and
left in place; bubblewrap; an environment with nothing of the platform's; a random password
sealed in the database), registered as the tenant's only agent.

Their root is a fresh directory under the system's temporary directory, not the state
directory: the tenant users must pass through every directory above their own, and a state
directory may sit in a private one (a test's). The runtime sensor of the demo's Dagster daemon
tends them meanwhile (restarts one that dies). On the way out, after Dagster has stopped (so
nothing starts them again), the demo stops them, keeps their logs in `logs/` and removes the
root.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from domain.caller import Caller
from domain.runtime import Runtime
from resources.database import Database
from resources.runtime_host import processes
from resources.runtime_host.host import RuntimeHost, RuntimeSettings
from resources.runtime_host.tenant_users import ROOT_MODE, tenant_directory
from services.factory import ServiceFactory
from services.runtime_manager import RuntimeManager

ROOT_PREFIX = "indorch-demo-runtimes-"
OPERATOR = Caller.operator()


def make_runtime_root() -> Path:
    """A fresh root others may pass through (not list)."""
    root = Path(tempfile.mkdtemp(prefix=ROOT_PREFIX))
    os.chmod(root, ROOT_MODE)
    return root


@dataclass
class DemoRuntimes:
    """The tenants' runtimes on this host (settings from the demo's environment)."""

    database: Database
    root: Path
    tenants: list[str] = field(default_factory=list)

    def _manager(self) -> RuntimeManager:
        host = RuntimeHost(RuntimeSettings.from_environment())
        assert host.settings.root == self.root, "the demo's environment names another root"
        return ServiceFactory(self.database, runtime_host=host).runtimes(host)

    def start_all(self, tenants: list[str]) -> list[Runtime]:
        """Side by side (a start mostly waits for OpenCode to boot); in `tenants`' order."""
        self.tenants += tenants  # before starting: `stop_all` reaches a half-started one
        manager = self._manager()
        with ThreadPoolExecutor(max_workers=len(tenants)) as pool:
            return list(pool.map(lambda tenant: manager.start(OPERATOR, tenant), tenants))

    def describe(self) -> list[dict[str, object]]:
        """Each tenant's runtime as it is now, with its agent's name and resident memory."""
        factory = ServiceFactory(self.database)
        described = []
        for runtime in self._manager().list(OPERATOR):
            agent = factory.agents().get(OPERATOR, runtime.tenant_id, runtime.agent_id or "")
            resident = processes.resident_kb(runtime.pid) // 1024 if runtime.pid else 0
            described.append(
                {
                    "tenant": runtime.tenant_id,
                    "status": runtime.status.value,
                    "os_user": runtime.os_user,
                    "sandboxed": runtime.sandboxed,
                    "server_url": runtime.server_url,
                    "pid": runtime.pid,
                    "agent": agent.agent.name,
                    "agent_id": agent.agent.id,
                    "restarts": runtime.restarts,
                    "resident_mb": resident,
                }
            )
        return described

    def stop_all(self, logs: Path) -> None:
        """Stop every one (side by side: a server takes seconds to exit), keep its log, remove
        the root (idempotent)."""
        manager = self._manager()

        def stop(tenant: str) -> None:
            with contextlib.suppress(Exception):  # the watchdog's marker still finds it
                manager.stop_any(OPERATOR, tenant, "the demo ended")
            log = tenant_directory(self.root, tenant) / "runtime.log"
            with contextlib.suppress(OSError):
                shutil.copyfile(log, logs / f"runtime-{tenant}.log")

        if self.tenants:
            with ThreadPoolExecutor(max_workers=len(self.tenants)) as pool:
                list(pool.map(stop, self.tenants))
        self.tenants.clear()
        shutil.rmtree(self.root, ignore_errors=True)
