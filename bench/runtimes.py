"""Managed runtimes: start time and resident memory per tenant runtime.

    .venv/bin/python -m bench.runtimes [--tenants 3] [--postgres-url postgresql://...]

Each tenant's runtime is started by the runtime manager as in production (its own OS user, the
bubblewrap sandbox, the real `opencode serve`, registered as the tenant's agent with a sealed
password) against the scripted model, on a fresh migrated PostgreSQL database:

- **cold start**: the first start (user and directories made, the workspace repository, a fresh
  HOME where OpenCode creates its database) until `/global/health` answers;
- **idle RSS**: the resident memory of the runtime's whole process tree a few seconds later
  (the figure for `INDORCH_RUNTIME_MEMORY_MB`, the memory budget's unit);
- **first prompt**: one session on it (the scripted model writes a file), the first prompt of a
  HOME installing the provider package from the npm registry;
- **RSS after a session**: resident memory after that session;
- **warm start**: stop, start again (user, HOME and workspace in place).

Results: a table on stdout and `bench/results/runtimes.json`. Needs root and bubblewrap.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import pwd
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from cryptography.fernet import Fernet
from rich.console import Console
from rich.table import Table

from bench.world import database
from domain.caller import Caller
from domain.runtime import OS_USER_PREFIX, Runtime
from domain.tenant import Tenant
from resources.database import Database, unit_of_work
from resources.opencode.control import agent_password
from resources.runtime_host import processes
from resources.runtime_host.host import RuntimeHost, RuntimeSettings
from services.factory import ServiceFactory
from standins.opencode_config import provider_config
from standins.scripted_model import running_scripted_model

RESULTS = Path(__file__).parent / "results" / "runtimes.json"
OPERATOR = Caller.operator()
SETTLE_SECONDS = 3.0


def _mb(runtime: Runtime) -> float:
    assert runtime.pid
    return round(processes.resident_kb(runtime.pid) / 1024, 1)


def _one_session(db: Database, runtime: Runtime) -> float:
    """A real session on the runtime (the scripted model writes a file); seconds to its end."""
    agent = ServiceFactory(db).agents().get(OPERATOR, runtime.tenant_id, runtime.agent_id or "")
    auth = ("opencode", agent_password(agent.agent) or "")
    started = time.monotonic()
    with httpx.Client(base_url=runtime.server_url or "", auth=auth, timeout=60) as client:
        session = client.post("/session", json={}).json()
        prompt = "[script:write path=bench.md content=bench] Write it."
        client.post(
            f"/session/{session['id']}/prompt_async",
            json={"parts": [{"type": "text", "text": prompt}]},
        ).raise_for_status()
        while time.monotonic() - started < 180:
            messages = client.get(f"/session/{session['id']}/message").json()
            if any(m["info"].get("finish") == "stop" for m in messages):
                return round(time.monotonic() - started, 2)
            time.sleep(0.2)
    raise RuntimeError("the session did not finish in 180 s")


def measure(url: str, root: Path, model_url: str, tenants: int) -> list[dict[str, Any]]:
    db = Database(url)
    settings = RuntimeSettings(
        root=root, opencode_config_json=json.dumps(provider_config(model_url))
    )
    manager = ServiceFactory(db).runtimes(RuntimeHost(settings))
    rows: list[dict[str, Any]] = []
    try:
        slugs = [f"bench-{index}-{os.getpid()}" for index in range(tenants)]
        with unit_of_work(db) as uow:
            for slug in slugs:
                uow.tenants.add(Tenant(slug=slug, name=slug))
        for slug in slugs:
            started = time.monotonic()
            runtime = manager.start(OPERATOR, slug)
            cold = round(time.monotonic() - started, 2)
            time.sleep(SETTLE_SECONDS)
            idle = _mb(runtime)
            first_prompt = _one_session(db, runtime)
            time.sleep(SETTLE_SECONDS)
            after = _mb(runtime)
            manager.stop(OPERATOR, slug)
            started = time.monotonic()
            runtime = manager.start(OPERATOR, slug)
            warm = round(time.monotonic() - started, 2)
            rows.append(
                {
                    "tenant": slug.rsplit("-", 1)[0],
                    "cold_start_s": cold,
                    "idle_rss_mb": idle,
                    "first_prompt_s": first_prompt,
                    "rss_after_session_mb": after,
                    "warm_start_s": warm,
                }
            )
        for slug in slugs:
            manager.stop(OPERATOR, slug)
    finally:
        for runtime in manager.list(OPERATOR):
            if runtime.pid and runtime.process_start:
                processes.stop(processes.ProcessHandle(runtime.pid, runtime.process_start))
        db.dispose()
    return rows


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    keys = [key for key in rows[0] if key != "tenant"]
    return {key: round(statistics.mean(row[key] for row in rows), 2) for key in keys}


def _table(rows: list[dict[str, Any]], summary: dict[str, Any]) -> Table:
    table = Table(title="managed runtimes: start time and resident memory per tenant runtime")
    for column in rows[0]:
        table.add_column(column, justify="left" if column == "tenant" else "right")
    for row in rows:
        table.add_row(*(str(value) for value in row.values()))
    table.add_row("mean", *(str(value) for value in summary.values()))
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tenants", type=int, default=3)
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    os.environ.setdefault("INDORCH_SECRET_KEY", Fernet.generate_key().decode())
    console = Console(width=140)
    users_before = {entry.pw_name for entry in pwd.getpwall()}
    root = Path(tempfile.mkdtemp(prefix="indorch-bench-runtimes-"))
    os.chmod(root, 0o711)
    try:
        with (
            tempfile.TemporaryDirectory(prefix="indorch-bench-") as scratch,
            running_scripted_model() as model_url,
            database("postgres", Path(scratch), "runtimes", args.postgres_url) as url,
        ):
            rows = measure(url, root, model_url, args.tenants)
    finally:
        for entry in pwd.getpwall():
            if entry.pw_name.startswith(OS_USER_PREFIX) and entry.pw_name not in users_before:
                subprocess.run(["userdel", entry.pw_name], capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)
    summary = _summary(rows)
    document = {
        "command": "python -m bench.runtimes",
        "arguments": {"tenants": args.tenants},
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_1m_at_end": round(os.getloadavg()[0], 2),
        },
        "runtimes": rows,
        "mean": summary,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=2) + "\n")
    console.print(_table(rows, summary))
    console.print(f"written {args.output}")


if __name__ == "__main__":
    main()
