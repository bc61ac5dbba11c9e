"""Fixtures for managed-runtime tests: real OS users, real bubblewrap.

``runtime_root``: a fresh runtime root outside pytest's private temporary directory (the tenant
users must be able to pass through to their own directories), removed afterwards with every
tenant user the test made. Where the host cannot sandbox (not root, no bubblewrap) the tests
skip and say why, or fail when services are required (``CI=true``).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from domain.caller import Caller
from domain.runtime import OS_USER_PREFIX, Runtime, os_user_for
from resources.runtime_host import network_rules
from resources.runtime_host.host import RuntimeHost
from resources.runtime_host.sandbox import sandbox_problem
from services.runtime_manager import RuntimeManager
from tests.conftest import services_required
from tests.integration.opencode.conftest import (  # noqa: F401  (fixtures, used by name)
    opencode_binary,
    scripted_model,
    scripted_model_url,
)


def require_sandbox() -> None:
    problem = sandbox_problem() or network_rules.network_problem()
    if problem is None:
        return
    if services_required():
        pytest.fail(f"tenant sandbox not available (services are required): {problem}")
    pytest.skip(f"tenant sandbox not available: {problem}")


def unique_tenant(prefix: str = "rt") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def start_runtimes(
    manager: RuntimeManager, host: RuntimeHost, tenants: Sequence[str]
) -> list[Runtime]:
    """The tenants' runtimes (`manager.start`, as the operator) started at once: a server's
    start is seconds of one core's work, and the host has more than one. Their OS users are
    made first, one at a time (two `useradd`s at once: one fails to lock /etc/passwd)."""
    sandboxed = host.sandboxed()
    for tenant in tenants:
        host.prepare(tenant, sandboxed)
    with ThreadPoolExecutor(max_workers=len(tenants)) as pool:
        return list(pool.map(lambda tenant: manager.start(Caller.operator(), tenant), tenants))


@pytest.fixture
def runtime_root() -> Iterator[Path]:
    require_sandbox()
    root = Path(tempfile.mkdtemp(prefix="indorch-runtimes-"))
    os.chmod(root, 0o711)
    users_before = {entry.pw_name for entry in pwd.getpwall()}
    chained_before = network_rules.confined_uids()
    try:
        yield root
    finally:
        _remove_users_made_since(root, users_before, chained_before)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def module_runtime_root() -> Iterator[Path]:
    """`runtime_root` for a whole module (its runtimes are slow to start)."""
    require_sandbox()
    root = Path(tempfile.mkdtemp(prefix="indorch-runtimes-"))
    os.chmod(root, 0o711)
    users_before = {entry.pw_name for entry in pwd.getpwall()}
    chained_before = network_rules.confined_uids()
    try:
        yield root
    finally:
        _remove_users_made_since(root, users_before, chained_before)
        shutil.rmtree(root, ignore_errors=True)


def _remove_users_made_since(root: Path, users_before: set[str], chained_before: set[int]) -> None:
    """Delete the tenant users this fixture's runtimes made (their HOME is under `root`), after
    killing their processes; release the firewall rules made since for them and for uids no
    user holds any more. Another test run on this host (a CI beside a developer's run) makes
    users and rules meanwhile: those are its own, and are left alone (releasing them let that
    run's agent reach Redis, and killing its users' processes stopped its servers)."""
    made = {
        entry.pw_name: entry.pw_uid
        for entry in pwd.getpwall()
        if entry.pw_name not in users_before and Path(entry.pw_dir).is_relative_to(root)
    }
    held = {entry.pw_uid for entry in pwd.getpwall()}
    for uid in network_rules.confined_uids() - chained_before:
        if uid in made.values() or uid not in held:
            network_rules.release(uid)
    _remove_users(made)


def remove_tenant_users(tenants: Iterable[str]) -> None:
    """These tenants' OS users only (another test's, made meanwhile, stay): their processes
    killed, their firewall rules released, the users deleted."""
    made = {}
    for tenant in tenants:
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(os_user_for(tenant))
            made[entry.pw_name] = entry.pw_uid
    _remove_users(made)


def _remove_users(made: dict[str, int]) -> None:
    uids = {uid for name, uid in made.items() if name.startswith(OS_USER_PREFIX)}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if os.stat(f"/proc/{entry}").st_uid in uids:
                    os.kill(int(entry), signal.SIGKILL)
    for name, uid in made.items():
        if name.startswith(OS_USER_PREFIX):
            network_rules.release(uid)  # a later user given this uid starts with none
            subprocess.run(["userdel", name], capture_output=True, check=False)
