"""The sandbox's command line and environment, built without running anything."""

from __future__ import annotations

from pathlib import Path

from resources.runtime_host.sandbox import SandboxSpec, sandbox_argv, sandbox_environment
from resources.runtime_host.tenant_users import TenantUser

USER = TenantUser(
    name="indorch-t-acme",
    uid=2001,
    gid=2001,
    home=Path("/srv/rt/acme/home"),
    workspaces=Path("/srv/rt/acme/workspaces"),
)
TOOLS = Path("/opt/opencode")


def spec() -> SandboxSpec:
    return SandboxSpec(user=USER, read_only=(TOOLS,), cwd=USER.workspaces)


def test_runs_as_the_tenant_user_in_fresh_namespaces() -> None:
    argv = sandbox_argv(spec(), ["opencode", "serve"])
    assert argv[:4] == ["setpriv", "--reuid=2001", "--regid=2001", "--clear-groups"]
    assert "bwrap" in argv
    assert "--unshare-all" in argv and "--share-net" in argv  # the server must be reachable
    assert argv[-2:] == ["opencode", "serve"]


def test_mounts_only_the_tenants_dirs_writable() -> None:
    argv = sandbox_argv(spec(), ["true"])
    writable = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--bind"]
    assert writable == [str(USER.home), str(USER.workspaces)]
    read_only = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--ro-bind"]
    assert str(TOOLS) in read_only
    assert "/" not in read_only  # never the whole host
    assert not any(path.startswith(("/root", "/home", "/var", "/srv")) for path in read_only)
    assert argv[argv.index("--proc") + 1] == "/proc"  # its own pid namespace's /proc


def test_no_secret_or_setenv_in_argv() -> None:
    argv = sandbox_argv(spec(), ["opencode", "serve"])
    assert "--setenv" not in argv


def test_environment_is_built_from_nothing() -> None:
    env = sandbox_environment(
        USER, {"OPENCODE_SERVER_PASSWORD": "pw", "OPENCODE_CONFIG_CONTENT": "{}"}
    )
    assert env["HOME"] == str(USER.home)
    assert env["USER"] == USER.name
    assert env["OPENCODE_SERVER_PASSWORD"] == "pw"
    allowed = {"HOME", "USER", "LOGNAME", "PATH", "LANG", "TMPDIR", "SHELL", "TERM"}
    assert set(env) - allowed == {"OPENCODE_SERVER_PASSWORD", "OPENCODE_CONFIG_CONTENT"}


def test_environment_refuses_platform_variables() -> None:
    import pytest

    for name in ("DATABASE_URL", "REDIS_URL", "INDORCH_SECRET_KEY", "AWS_SECRET_ACCESS_KEY"):
        with pytest.raises(ValueError, match=name):
            sandbox_environment(USER, {name: "x"})
