"""The sandbox itself, adversarially: a tenant's command, run the way its runtime runs (the
tenant's OS user inside bubblewrap), cannot reach another tenant's files, the platform's
files, secrets or processes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from resources.runtime_host.sandbox import run_in_sandbox
from resources.runtime_host.tenant_users import TenantUser, ensure_tenant_user
from tests.integration.runtime.conftest import unique_tenant

PROJECT_ROOT = Path(__file__).resolve().parents[3]
SECRET = "b-secret-7f3a"


@pytest.fixture
def tenants(runtime_root: Path) -> tuple[TenantUser, TenantUser]:
    a = ensure_tenant_user(unique_tenant("a"), runtime_root)
    b = ensure_tenant_user(unique_tenant("b"), runtime_root)
    for directory in (b.home, b.workspaces):
        secret = directory / "secret.txt"
        secret.write_text(SECRET)
        os.chown(secret, b.uid, b.gid)
    return a, b


def sh(user: TenantUser, script: str) -> tuple[int, str]:
    result = run_in_sandbox(user, ["bash", "-c", script], timeout=30)
    return result.returncode, result.stdout + result.stderr


def test_each_tenant_has_its_own_user_and_private_dirs(
    tenants: tuple[TenantUser, TenantUser],
) -> None:
    a, b = tenants
    assert a.uid != b.uid and a.uid != 0 and b.uid != 0
    for user in (a, b):
        for directory in (user.home, user.workspaces):
            info = directory.stat()
            assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (user.uid, 0o700)
    code, out = sh(a, "id -u")
    assert (code, out.strip()) == (0, str(a.uid))


def test_a_cannot_read_bs_files_by_any_route(tenants: tuple[TenantUser, TenantUser]) -> None:
    a, b = tenants
    for directory in (b.home, b.workspaces):
        target = directory / "secret.txt"
        for attempt in (
            f"cat {target}",
            f"python3 -c \"print(open('{target}').read())\"",
            f"ls -la {directory}",
            f"grep -r {SECRET} {directory.parent}",
        ):
            code, out = sh(a, attempt)
            assert code != 0, attempt
            assert SECRET not in out, attempt
    everywhere = f"{b.tenant_dir.parent} /tmp /home /root /var /srv /work /etc"
    code, out = sh(a, f"grep -rs {SECRET} {everywhere}; echo done")
    assert "done" in out
    assert SECRET not in out


def test_a_can_use_its_own_dirs(tenants: tuple[TenantUser, TenantUser]) -> None:
    a, _ = tenants
    code, out = sh(a, f"echo mine > {a.workspaces}/x && cat {a.workspaces}/x && ls {a.home}")
    assert code == 0 and "mine" in out


def test_the_platform_is_not_mounted(tenants: tuple[TenantUser, TenantUser]) -> None:
    a, _ = tenants
    for path in (PROJECT_ROOT / "pyproject.toml", PROJECT_ROOT / ".state", Path("/root")):
        code, out = sh(a, f"ls {path}")
        assert code != 0, f"{path} is visible in the sandbox: {out}"


def test_no_platform_secret_in_the_environment(
    tenants: tuple[TenantUser, TenantUser], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, _ = tenants
    monkeypatch.setenv("DATABASE_URL", "postgresql://leak")
    monkeypatch.setenv("REDIS_URL", "redis://leak")
    monkeypatch.setenv("INDORCH_SECRET_KEY", "leak")
    code, out = sh(a, "env; cat /proc/1/environ | tr '\\0' '\\n'")
    assert code == 0
    assert "leak" not in out
    assert "INDORCH_" not in out and "DATABASE_URL" not in out and "REDIS_URL" not in out


def test_the_control_planes_processes_are_invisible(
    tenants: tuple[TenantUser, TenantUser],
) -> None:
    a, _ = tenants
    code, out = sh(a, "ls /proc | grep -E '^[0-9]+$'")
    assert code == 0
    pids = {int(line) for line in out.split()}
    assert os.getpid() not in pids or len(pids) < 5
    assert len(pids) < 5, f"sandbox sees {len(pids)} processes: {sorted(pids)}"
    code, out = sh(a, "ps -eo user,cmd")
    assert "pytest" not in out and "root" not in out
