"""What a session's scratch workspace costs the agent's OpenCode server: warm slots against a new
directory per session, and the server's own directory as the floor, in one run.

    .venv/bin/python -m bench.workspace_slots [--sessions 24] [--concurrency 4]

One real OpenCode server on the scripted model, restarted fresh and warmed up before each
scenario (a server grows slower with the sessions it holds), one SQLite database. Each scenario
runs `--sessions` two-turn sessions (`[script:write ...]`), `--concurrency` at a time, through
the product's `SessionWorkspaces` (prepare before the agent session, release with the server's
instance disposal after it, as a wave does):
1. **warm slots** (the default, `warm_slots_per_agent` 4): a freed slot is the next session's;
2. **a new directory per session** (`warm_slots_per_agent` 0: every slot retired at release,
   its instance disposed; what every session paid before slots);
3. **floor**: the sessions in the server's own directory, no workspace at all.
Measured: the server's CPU time per session (its process tree, from /proc: robust to the
machine's other load), session wall time p50/p95 (create to final answer), the server's resident
memory at the end. Results: a table and `bench/results/workspace_slots.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.analysis import percentile
from bench.fleet import Fleet
from bench.machine import facts
from bench.procstat import all_processes, descendants, read_proc
from domain.session import Session
from domain.tenant import Tenant
from resources.database import Database, tenant_scope, unit_of_work
from resources.database.migrate import upgrade
from services.session_workspaces import SessionWorkspaces, WorkspaceLayout

RESULTS = Path(__file__).parent / "results" / "workspace_slots.json"
TENANT = "bench-slots"
AGENT = "bench-agent"
PROMPT = '[script:write path=notes.md content="slot\\n"] Write the notes.'
ANSWER_TIMEOUT_SECONDS = 120.0


def _tree_cpu_seconds(pid: int) -> float:
    table = all_processes()
    tree = [info for info in (read_proc(pid), *descendants(pid, table)) if info is not None]
    return sum(info.cpu_seconds + info.children_cpu_seconds for info in tree)


def _tree_rss_mb(pid: int) -> float:
    table = all_processes()
    tree = [info for info in (read_proc(pid), *descendants(pid, table)) if info is not None]
    return sum(info.rss_mb for info in tree)


async def _one_session(
    client: httpx.AsyncClient, directory: str | None, prompt: str = PROMPT
) -> float:
    """Create, prompt and wait for the final answer; the wall time it took."""
    started = time.perf_counter()
    params = {"directory": directory} if directory else None
    created = await client.post("/session", params=params, json={"title": "slots"})
    created.raise_for_status()
    session_id = created.json()["id"]
    body = {"parts": [{"type": "text", "text": prompt}], "agent": "build"}
    sent = await client.post(f"/session/{session_id}/prompt_async", params=params, json=body)
    sent.raise_for_status()
    deadline = time.monotonic() + ANSWER_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        messages = (await client.get(f"/session/{session_id}/message", params=params)).json()
        replies = [m for m in messages if m["info"]["role"] == "assistant"]
        if (
            replies
            and all((m["info"].get("time") or {}).get("completed") for m in replies)
            and replies[-1]["info"].get("finish") == "stop"
        ):
            return time.perf_counter() - started
        await asyncio.sleep(0.05)
    raise RuntimeError(f"session {session_id} did not finish in {ANSWER_TIMEOUT_SECONDS:g} s")


async def _scenario(
    url: str, database: Database, workspaces: SessionWorkspaces | None, args: argparse.Namespace
) -> list[float]:
    gate = asyncio.Semaphore(args.concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=ANSWER_TIMEOUT_SECONDS) as client:

        async def dispose_of(directory: Path) -> None:
            await client.post("/instance/dispose", params={"directory": str(directory)})

        async def run(number: int) -> float:
            async with gate:
                if workspaces is None:
                    return await _one_session(client, None)
                session = Session(tenant_id=TENANT, title=f"s{number}", initial_prompt=PROMPT)
                with tenant_scope(TENANT), unit_of_work(database) as uow:
                    uow.sessions.add(session)
                workspace = await workspaces.prepare(session, lambda _line: None, AGENT)
                took = await _one_session(client, str(workspace.directory))
                await workspaces.release(
                    session, workspace, lambda: dispose_of(workspace.directory)
                )
                return took

        return list(await asyncio.gather(*(run(n) for n in range(args.sessions))))


def run(args: argparse.Namespace) -> dict[str, Any]:
    scratch = Path(tempfile.mkdtemp(prefix="indorch-bench-slots-"))
    url = f"sqlite:///{scratch / 'slots.db'}"
    upgrade(url)
    database = Database(url)
    with unit_of_work(database) as uow:
        uow.tenants.add(Tenant(slug=TENANT, name="Slots bench"))
    fleet = Fleet(scratch).start(1)
    scenarios: list[tuple[str, SessionWorkspaces | None]] = [
        ("warm slots", SessionWorkspaces(database, WorkspaceLayout(scratch / "warm"))),
        (
            "a new directory per session",
            SessionWorkspaces(database, WorkspaceLayout(scratch / "new"), warm_slots_per_agent=0),
        ),
        ("floor: the server's own directory", None),
    ]
    rows = []
    try:
        for number, (name, workspaces) in enumerate(scenarios):
            if number:
                fleet.restart_servers()  # each scenario on a fresh, warmed-up server
            server = fleet.servers[0]
            assert server.pid is not None
            before = _tree_cpu_seconds(server.pid)
            walls = asyncio.run(_scenario(fleet.urls[0], database, workspaces, args))
            cpu = _tree_cpu_seconds(server.pid) - before
            rows.append(
                {
                    "scenario": name,
                    "sessions": len(walls),
                    "server_cpu_s_per_session": round(cpu / len(walls), 3),
                    "wall_p50_s": round(percentile(walls, 0.5) or 0.0, 2),
                    "wall_p95_s": round(percentile(walls, 0.95) or 0.0, 2),
                    "server_rss_mb_after": round(_tree_rss_mb(server.pid), 1),
                }
            )
            print(_line(rows[-1]), flush=True)
    finally:
        fleet.stop()
        database.dispose()
    floor = rows[-1]["server_cpu_s_per_session"]
    for row in rows:
        row["cpu_vs_floor"] = round(row["server_cpu_s_per_session"] / floor, 2) if floor else None
    return {
        "command": f"python -m bench.workspace_slots --sessions {args.sessions} "
        f"--concurrency {args.concurrency}",
        "machine": facts(),
        "rows": rows,
    }


def _line(row: dict[str, Any]) -> str:
    return (
        f"{row['scenario']:<36} {row['sessions']:>4} {row['server_cpu_s_per_session']:>10.3f} "
        f"{row['wall_p50_s']:>7.2f} {row['wall_p95_s']:>7.2f} {row['server_rss_mb_after']:>8.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=24)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    print(f"{'scenario':<36} {'n':>4} {'srv CPU-s':>10} {'p50 s':>7} {'p95 s':>7} {'RSS MB':>8}")
    result = run(args)
    print(
        "\n".join(f"{r['scenario']}: {r['cpu_vs_floor']}x the floor's CPU" for r in result["rows"])
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written: {args.output}")


if __name__ == "__main__":
    main()
