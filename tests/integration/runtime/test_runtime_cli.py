"""`indorch runtime ...` as operators run it: real processes, PostgreSQL, OpenCode, OS users.

Start registers the tenant's runtime as its agent; list shows it; with the memory budget full a
second tenant waits (exit 3) and its queued session says so in `session show`; stop ends the
server. Run by an unprivileged user, start is refused loudly (the sandbox cannot be made) unless
unsandboxed runtimes are allowed.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet

from standins.opencode_config import provider_config
from tests.integration.cli.support import INDORCH, indorch, ok
from tests.integration.runtime.conftest import unique_tenant

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def env(runtime_root: Path, scripted_model_url: str, opencode_binary: Path) -> dict[str, str]:
    config = runtime_root / "opencode.json"
    config.write_text(json.dumps(provider_config(scripted_model_url)))
    config.chmod(0o644)
    return {
        "INDORCH_RUNTIME_ROOT": str(runtime_root),
        "INDORCH_RUNTIME_OPENCODE_CONFIG": str(config),
        "INDORCH_SECRET_KEY": Fernet.generate_key().decode(),
        "INDORCH_RUNTIME_MEMORY_BUDGET_MB": "300",  # one slot
    }


@pytest.fixture
def url(migrated_postgres_copy: str) -> str:
    return migrated_postgres_copy


def test_start_list_wait_show_stop(url: str, env: dict[str, str]) -> None:
    # Slugs of this test's own: their OS users are the host's, shared with any other run.
    acme, beta = unique_tenant("acme"), unique_tenant("beta")
    for tenant in (acme, beta):
        ok(url, "tenant", "create", tenant)
    started = indorch(url, "runtime", "start", "--tenant", acme, "--json", env=env, timeout=150)
    try:
        assert started.returncode == 0, started.stderr
        runtime = json.loads(started.stdout)
        assert runtime["status"] == "LIVE" and runtime["sandboxed"] is True
        listed = ok(url, "runtime", "list", env=env)
        assert acme in listed and "LIVE" in listed
        agents = ok(url, "agent", "list", "--tenant", acme, "--json", env=env)
        (agent,) = json.loads(agents)
        assert agent["name"].startswith("managed-runtime-") and "password_sealed" not in agent
        assert agent["server_url"] == f"http://127.0.0.1:{runtime['port']}"

        waiting = indorch(url, "runtime", "start", "--tenant", beta, env=env)
        assert waiting.returncode == 3, (waiting.stdout, waiting.stderr)
        assert "waiting for a runtime slot" in waiting.stderr
        submitted = ok(url, "session", "submit", "--tenant", beta, "--prompt", "hi", "--json")
        session_id = json.loads(submitted)["id"]
        shown = ok(url, "session", "show", session_id, "--tenant", beta, env=env)
        assert "waiting for a runtime slot" in shown
    finally:
        stopped = indorch(url, "runtime", "stop", "--tenant", acme, env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert "STOPPED" in stopped.stdout
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{runtime['port']}/global/health", timeout=2)

    # Deleting the tenant removes its runtime directories, and says so.
    tenant_dir = Path(env["INDORCH_RUNTIME_ROOT"]) / acme
    assert (tenant_dir / "home").is_dir() and (tenant_dir / "workspaces").is_dir()
    deleted = ok(url, "tenant", "delete", acme, "--yes", env=env)
    assert f"removed its runtime directory {tenant_dir} (HOME, workspaces)" in deleted
    assert not tenant_dir.exists()


def test_an_unprivileged_control_plane_is_refused_loudly(url: str, env: dict[str, str]) -> None:
    ok(url, "tenant", "create", "acme")
    # Not root, yet able to read the checkout wherever it lies (a private temporary directory in
    # CI): the capability to read and search, nothing else.
    read_anything = ["--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]
    as_nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    as_nobody += [*read_anything, INDORCH]
    done = subprocess.run(
        [*as_nobody, "runtime", "start", "--tenant", "acme"],
        env={**os.environ, **env, "DATABASE_URL": url, "INDORCH_STATE_DIR": "/tmp"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "cannot be sandboxed" in done.stderr and "not root" in done.stderr
    assert "read every other tenant's files" in done.stderr  # what is lost, said
