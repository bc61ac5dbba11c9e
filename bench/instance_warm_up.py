"""What warms an OpenCode server's instance for a new directory before a burst needs it.

    .venv/bin/python -m bench.instance_warm_up [--sessions 16] [--concurrency 16]

One real OpenCode server on the scripted model, restarted fresh for each way of warming. Each
way makes `--sessions` new scratch directories (as `SessionWorkspaces` makes a slot), warms each
in its way one after another (the agent-health sensor's part, off the sessions' path), then runs
one two-turn session in each (`[script:write ...]`, a file of its own), `--concurrency` at a time:
the burst.
1. **cold**: nothing before the burst (a new slot per session, as before slots were warmed);
2. **v1 reads**: `GET /config`, `/agent`, `/command`, `/file/status`, `/vcs`, `/lsp`, ... there;
3. **v2 location read**: `GET /api/agent?location[directory]=` (boots the "location services");
4. **message, no reply**: a session and a message with `noReply` (no model call);
5. **the product's warm-up** (`services.slot_warming.warm_instance`): a session, one prompt with
   every tool denied, the session deleted;
6. **a full session**: the same two-turn session as the burst's.
Then the floor: the burst in the server's own directory (warmed by the fleet), no slots.
Measured: the server's CPU (its process tree, /proc) for the warm-up and per burst session, the
burst sessions' wall time p50/p95 (create to final answer), the server's memory after. Results:
a table and `bench/results/instance_warm_up.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from bench.analysis import percentile
from bench.fleet import Fleet
from bench.machine import facts
from bench.workspace_slots import _one_session, _tree_cpu_seconds, _tree_rss_mb
from resources.git.checkout import GitCheckouts
from resources.git.command_runner import LocalCommandRunner
from resources.opencode.client import OpenCodeClient
from services.slot_warming import warm_instance

RESULTS = Path(__file__).parent / "results" / "instance_warm_up.json"
BURST_PROMPT = '[script:write path=notes-{n}.md content="burst\\n"] Write the notes.'
V1_READS = (
    "/config",
    "/config/providers",
    "/agent",
    "/command",
    "/skill",
    "/file/status",
    "/vcs",
    "/lsp",
    "/formatter",
    "/mcp",
    "/project/current",
    "/path",
)
Warm = Callable[[httpx.AsyncClient, str], Awaitable[None]]


async def _v1_reads(client: httpx.AsyncClient, directory: str) -> None:
    for path in V1_READS:
        (await client.get(path, params={"directory": directory})).raise_for_status()


async def _v2_location(client: httpx.AsyncClient, directory: str) -> None:
    (await client.get("/api/agent", params={"location[directory]": directory})).raise_for_status()


async def _no_reply(client: httpx.AsyncClient, directory: str) -> None:
    where = {"directory": directory}
    created = await client.post("/session", params=where, json={"title": "warm-up"})
    session_id = created.raise_for_status().json()["id"]
    body = {"noReply": True, "parts": [{"type": "text", "text": "warm-up"}]}
    (
        await client.post(f"/session/{session_id}/message", params=where, json=body)
    ).raise_for_status()
    await client.delete(f"/session/{session_id}", params=where)


async def _product(client: httpx.AsyncClient, directory: str) -> None:
    async with OpenCodeClient(str(client.base_url)) as agent:
        await warm_instance(agent, Path(directory))


async def _full_session(client: httpx.AsyncClient, directory: str) -> None:
    await _one_session(client, directory)


WAYS: list[tuple[str, Warm | None]] = [
    ("cold: nothing", None),
    ("v1 reads", _v1_reads),
    ("v2 location read", _v2_location),
    ("message, no reply", _no_reply),
    ("the product's warm-up (no tools)", _product),
    ("a full session", _full_session),
]


async def _directories(root: Path, count: int) -> list[str]:
    git = GitCheckouts(LocalCommandRunner(), root / "home", lock_dir=root / "locks")
    made = [root / "slots" / f"slot-{number}" for number in range(count)]
    for directory in made:
        await git.init_scratch(directory)
    return [str(directory) for directory in made]


async def _way(
    url: str,
    pid: int,
    warm: Warm | None,
    directories: list[str] | None,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Warm each of `directories` in its way, then the burst: a session in each (in the
    server's own directory, `--sessions` of them, without directories)."""
    gate = asyncio.Semaphore(args.concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=180.0) as client:
        before = _tree_cpu_seconds(pid)
        started = time.perf_counter()
        if warm is not None and directories is not None:
            for directory in directories:
                await warm(client, directory)
        warm_cpu = _tree_cpu_seconds(pid) - before
        warm_wall = time.perf_counter() - started
        await asyncio.sleep(2.0)  # the server's own after-work of the warm-ups settles

        async def one(number: int, directory: str | None) -> float:
            async with gate:
                return await _one_session(client, directory, BURST_PROMPT.format(n=number))

        before = _tree_cpu_seconds(pid)
        targets: list[str | None] = list(directories) if directories else [None] * args.sessions
        walls = list(await asyncio.gather(*(one(n, d) for n, d in enumerate(targets))))
        burst_cpu = _tree_cpu_seconds(pid) - before
    count = len(walls)
    return {
        "warm_up_cpu_s_per_directory": round(warm_cpu / count, 3) if warm else 0.0,
        "warm_up_wall_s": round(warm_wall, 1),
        "burst_cpu_s_per_session": round(burst_cpu / count, 3),
        "burst_p50_s": round(percentile(walls, 0.5) or 0.0, 2),
        "burst_p95_s": round(percentile(walls, 0.95) or 0.0, 2),
        "sessions": count,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    scratch = Path(tempfile.mkdtemp(prefix="indorch-bench-warm-up-"))
    fleet = Fleet(scratch).start(1)
    rows = []
    try:
        ways: list[tuple[str, Warm | None, bool]] = [(n, w, True) for n, w in WAYS]
        ways.append(("floor: the server's own directory", None, False))
        for number, (name, warm, in_slots) in enumerate(ways):
            if number:
                fleet.restart_servers()
            server = fleet.servers[0]
            assert server.pid is not None
            directories = (
                asyncio.run(_directories(scratch / f"way-{number}", args.sessions))
                if in_slots
                else None
            )
            row = asyncio.run(_way(fleet.urls[0], server.pid, warm, directories, args))
            row = {"way": name, **row, "server_rss_mb_after": round(_tree_rss_mb(server.pid))}
            rows.append(row)
            print(_line(row), flush=True)
    finally:
        fleet.stop()
    floor = rows[-1]["burst_cpu_s_per_session"]
    for row in rows:
        row["burst_cpu_vs_floor"] = round(row["burst_cpu_s_per_session"] / floor, 2)
    return {
        "command": f"python -m bench.instance_warm_up --sessions {args.sessions} "
        f"--concurrency {args.concurrency}",
        "machine": facts(),
        "rows": rows,
    }


def _line(row: dict[str, Any]) -> str:
    return (
        f"{row['way']:<36} {row['warm_up_cpu_s_per_directory']:>8.2f} "
        f"{row['burst_cpu_s_per_session']:>8.2f} {row['burst_p50_s']:>7.2f} "
        f"{row['burst_p95_s']:>7.2f} {row['server_rss_mb_after']:>8}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=16)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    print(f"{'way':<36} {'warm CPU':>8} {'burst CPU':>8} {'p50 s':>7} {'p95 s':>7} {'RSS MB':>8}")
    result = run(args)
    print("\n".join(f"{r['way']}: {r['burst_cpu_vs_floor']}x the floor's" for r in result["rows"]))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written: {args.output}")


if __name__ == "__main__":
    main()
