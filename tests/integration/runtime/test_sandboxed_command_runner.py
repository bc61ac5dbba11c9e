"""The command runner of a managed runtime (git and setup scripts, `resources.git`'s port): the
command runs as the tenant's OS user inside its sandbox, sees its own directories only, gets the
environment it is given and nothing of the platform's."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from resources.runtime_host.command_runner import SandboxedCommandRunner
from resources.runtime_host.tenant_users import TenantUser, ensure_tenant_user
from tests.integration.runtime.conftest import unique_tenant


@pytest.fixture
def tenants(runtime_root: Path) -> tuple[TenantUser, TenantUser]:
    a = ensure_tenant_user(unique_tenant("a"), runtime_root)
    b = ensure_tenant_user(unique_tenant("b"), runtime_root)
    secret = b.workspaces / "secret.txt"
    secret.write_text("b-only")
    os.chown(secret, b.uid, b.gid)
    return a, b


def test_git_runs_as_the_tenant_in_its_workspace(
    tenants: tuple[TenantUser, TenantUser], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = tenants
    monkeypatch.setenv("DATABASE_URL", "postgresql://leak")
    lines: list[str] = []
    script = (
        "git init -q -b main repo && cd repo && echo hi > f && git add f && "
        "git -c user.name=t -c user.email=t@x commit -qm one && git log --format=%s && "
        "id -u && env && cat " + str(b.workspaces / "secret.txt")
    )
    result = asyncio.run(
        SandboxedCommandRunner(a).run(
            ["sh", "-c", script],
            cwd=a.workspaces,
            env={"INDORCH_GIT_PASSWORD": "tenant-token"},
            timeout=60,
            on_output=lines.append,
        )
    )
    assert result.returncode != 0  # the last command (B's file) fails
    assert "one\n" in result.output and f"{a.uid}\n" in result.output
    assert "INDORCH_GIT_PASSWORD=tenant-token" in result.output  # what it was given
    assert "leak" not in result.output and "b-only" not in result.output
    assert "No such file" in result.output
    assert (a.workspaces / "repo" / "f").stat().st_uid == a.uid
    assert lines and "".join(lines).endswith(result.output[-20:])


def test_a_platform_variable_is_refused(tenants: tuple[TenantUser, TenantUser]) -> None:
    a, _ = tenants
    with pytest.raises(ValueError, match="DATABASE_URL"):
        asyncio.run(
            SandboxedCommandRunner(a).run(
                ["true"], cwd=a.workspaces, env={"DATABASE_URL": "x"}, timeout=10
            )
        )


def test_a_command_past_its_timeout_is_killed(tenants: tuple[TenantUser, TenantUser]) -> None:
    a, _ = tenants
    result = asyncio.run(
        SandboxedCommandRunner(a).run(["sleep", "30"], cwd=a.workspaces, env={}, timeout=1)
    )
    assert result.returncode == -1 and "killed after 1 s" in result.output
