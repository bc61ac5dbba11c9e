"""The agent side of the managed-runtime row: one runtime per tenant, sessions on repositories.

Each tenant's runtime is started by the runtime manager as in production (its own OS user,
bubblewrap, a real `opencode serve` against the scripted model, registered as the tenant's only
agent, its password sealed), in the scenario's fresh database, and warmed up with one session
(its first prompt installs the provider package into its HOME), outside the measured window.
Each tenant has a repository (`bench`, a bare repository with a README) served by `git
http-backend` over HTTP with credentials from a tenant secret, as a hosted remote would be; every
session of the row names it, so each gets its own worktree on `indorch/<session id>` inside its
tenant's runtime (git as the tenant's user in its sandbox, in the measured control plane's
process tree), and the wave commits and pushes the branch when it completes.

The runtime agent's capacity is raised to `AGENT_CAPACITY`, as the shared rows' agents have; the
row still has one agent (one server) per tenant, where the shared rows give each tenant one agent
on every server. Needs root and bubblewrap (`RuntimeSetup.problem` says why not).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.fernet import Fernet

from bench.fleet import warm_up
from bench.procstat import read_proc
from bench.world import AGENT_CAPACITY, TENANT_LIMIT, TOKEN_BUDGET, World
from domain.caller import Caller
from domain.code_repository import CodeRepository
from domain.runtime import Runtime, os_user_for
from domain.tenant import Tenant
from resources.database import Database, tenant_scope, unit_of_work
from resources.opencode.control import agent_password
from resources.runtime_host import processes
from resources.runtime_host.host import ROOT_VAR, RuntimeHost, RuntimeSettings
from resources.runtime_host.network_rules import ALLOW_VAR, allowing
from resources.runtime_host.opencode_runtime import RuntimeStartError
from resources.runtime_host.sandbox import sandbox_problem
from resources.runtime_host.tenant_users import ROOT_MODE
from resources.secret_box import SECRET_KEY_VAR
from services.factory import ServiceFactory
from services.runtime_manager import RuntimeManager
from standins.git_http_server import GitHttpServer
from standins.opencode_config import provider_config

OPERATOR = Caller.operator()
START_ATTEMPTS = 3
REPOSITORY = "bench"
GIT_USER = "bench"
SECRET = "bench-git"
GIT_ENV = {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
IDENTITY = ["-c", "user.name=bench", "-c", "user.email=bench@localhost"]


def problem() -> str | None:
    """Why the row cannot run here (not root, no bubblewrap), or None."""
    return sandbox_problem()


@dataclass
class RuntimeSetup:
    """Per bench run: the runtimes' root (others may pass through it), the secret key the
    conductor and the workers share; the bench tenants' users it made are removed at its end
    (only those: other users of the prefix may be someone else's, in use)."""

    root: Path

    @classmethod
    @contextlib.contextmanager
    def made(cls, tenants: list[str]) -> Iterator[RuntimeSetup]:
        os.environ.setdefault(SECRET_KEY_VAR, Fernet.generate_key().decode())
        root = Path(tempfile.mkdtemp(prefix="indorch-bench-runtimes-"))
        os.chmod(root, ROOT_MODE)
        os.environ[ROOT_VAR] = str(root)  # the workers inherit it: worktrees inside the runtimes
        ours = {os_user_for(tenant) for tenant in tenants}
        existing = {entry.pw_name for entry in pwd.getpwall()}
        try:
            yield cls(root)
        finally:
            for name in sorted(ours - existing):
                subprocess.run(["userdel", name], capture_output=True, check=False)
            shutil.rmtree(root, ignore_errors=True)


@dataclass
class RuntimeAgents:
    """The row's agent side while it runs (the conductor reads their CPU and memory)."""

    pids: dict[str, int]

    def agent_side_cpu_seconds(self) -> float:
        total = 0.0
        for pid in self.pids.values():
            for member in processes.process_tree(pid):
                info = read_proc(member)
                total += info.cpu_seconds if info else 0.0
        return total

    def agent_side_cpu_by_role(self) -> dict[str, float]:
        return {"runtimes": self.agent_side_cpu_seconds()}

    def agent_side_rss_mb(self) -> dict[str, float]:
        return {
            tenant: round(processes.resident_kb(pid) / 1024, 1) for tenant, pid in self.pids.items()
        }


def _git(directory: Path, *args: str) -> None:
    subprocess.run(
        ["git", *IDENTITY, *args],
        cwd=directory,
        env={**os.environ, **GIT_ENV},
        capture_output=True,
        check=True,
    )


def _bare_repository(served: Path, tenant: str) -> None:
    seed = served / f"{tenant}-seed"
    seed.mkdir(parents=True)
    _git(seed, "init", "--quiet", "-b", "main")
    (seed / "README.md").write_text(f"# {tenant}'s bench repository\n")
    _git(seed, "add", "--all")
    _git(seed, "commit", "--quiet", "-m", "first")
    _git(served, "clone", "--quiet", "--bare", str(seed), str(served / tenant / "bench.git"))
    shutil.rmtree(seed)


def pushed_branches(folder: Path) -> int:
    """The `indorch/<session id>` branches the row's sessions pushed, over every tenant."""
    total = 0
    for bare in sorted((folder / "served").glob("*/bench.git")):
        listed = subprocess.run(
            ["git", "for-each-ref", "--format=%(refname)", "refs/heads/indorch/"],
            cwd=bare,
            env={**os.environ, **GIT_ENV},
            capture_output=True,
            text=True,
            check=True,
        )
        total += len(listed.stdout.split())
    return total


def _start(manager: RuntimeManager, slug: str) -> Runtime:
    """The tenant's runtime, tried again when it did not start: on a machine shared with other
    test runs, a runtime test's clean-up kills the processes of every tenant user made during
    that test, this bench's included (seen: `setsid: child did not exit normally`)."""
    for attempt in range(1, START_ATTEMPTS + 1):
        try:
            return manager.start(OPERATOR, slug)
        except RuntimeStartError as error:
            if attempt == START_ATTEMPTS:
                raise
            print(f"runtime of {slug} did not start (attempt {attempt}): {error}", flush=True)
    raise AssertionError("unreachable")


@contextlib.contextmanager
def runtime_world(
    url: str, tenants: list[str], setup: RuntimeSetup, model_url: str, folder: Path
) -> Iterator[tuple[World, RuntimeAgents]]:
    """The tenants, each with its runtime and repository, in the database at `url`; the
    runtimes stopped and the git server closed afterwards."""
    db = Database(url)
    settings = RuntimeSettings(
        root=setup.root, opencode_config_json=json.dumps(provider_config(model_url))
    )
    host = RuntimeHost(settings)
    factory = ServiceFactory(db, runtime_host=host)
    manager = factory.runtimes(host)
    served = folder / "served"
    password = Fernet.generate_key().decode()[:24]
    git_server = GitHttpServer(served, username=GIT_USER, password=password)
    git_started = False
    try:
        with unit_of_work(db) as uow:
            for slug in tenants:
                uow.tenants.add(
                    Tenant(
                        slug=slug,
                        name=f"Bench {slug}",
                        max_concurrent_sessions=TENANT_LIMIT,
                        monthly_token_budget=TOKEN_BUDGET,
                    )
                )
        git_url = git_server.start()
        git_started = True
        # The runtimes' network rules refuse the loopback but for what is allowed when they start.
        os.environ[ALLOW_VAR] = allowing(urlsplit(git_url).netloc)
        pids: dict[str, int] = {}
        for slug in tenants:
            _bare_repository(served, slug)
            factory.secrets().set(OPERATOR, slug, SECRET, f"{GIT_USER}:{password}")
            factory.repositories().register(
                OPERATOR,
                CodeRepository(
                    tenant_id=slug,
                    name=REPOSITORY,
                    url=f"{git_url}/{slug}/bench.git",
                    credentials_secret=SECRET,
                ),
            )
            runtime = _start(manager, slug)
            assert runtime.pid is not None and runtime.agent_id is not None
            pids[slug] = runtime.pid
            with tenant_scope(slug), unit_of_work(db) as uow:
                agent = uow.agents.get(runtime.agent_id)
                agent.capacity = AGENT_CAPACITY
                uow.agents.save(agent)
            warm_up(runtime.server_url or "", ("opencode", agent_password(agent) or ""))
        capacity = {f"runtime:{slug}": AGENT_CAPACITY for slug in tenants}
        yield World(url, tenants, len(tenants), capacity), RuntimeAgents(pids)
    finally:
        for runtime in manager.list(OPERATOR):
            if runtime.pid and runtime.process_start:
                processes.stop(processes.ProcessHandle(runtime.pid, runtime.process_start))
        if git_started:
            git_server.stop()
        db.dispose()
