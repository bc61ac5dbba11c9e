"""What an OpenCode server's loaded instances cost it while nothing runs: its CPU per second
idle with each count of instances (one session's two turns in each of N new scratch
directories, then left alone), in one run.

    .venv/bin/python -m bench.idle_instances [--instances 0,12] [--settle 20] [--window 30]

Why: every session in a workspace of its own loads an instance on its server, and a slot kept
for the next session keeps it; if an idle instance costs its server CPU, a burst that lasts
longer costs the servers more whatever is asked of them. One real server on the scripted model,
restarted fresh (a new HOME) for each count; its process tree's CPU over `--window` seconds,
`--settle` seconds after the last session's prompt. Results: a table and
`bench/results/idle_instances.json`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from bench.fleet import Fleet
from bench.machine import facts
from bench.procstat import all_processes, descendants, read_proc

RESULTS = Path(__file__).resolve().parent / "results" / "idle_instances.json"
TWO_TURNS = '[script:write path=a.md content="a\\n"] Write a.'


def tree_cpu_seconds(pid: int) -> float:
    root = read_proc(pid)
    members = [root, *descendants(pid, all_processes())]
    return sum(info.cpu_seconds + info.children_cpu_seconds for info in members if info)


def load_instances(url: str, root: Path, count: int) -> None:
    """One session in each of `count` new scratch repositories (an instance each)."""
    with httpx.Client(base_url=url, timeout=60.0) as client:
        for number in range(count):
            directory = root / f"d{number}"
            directory.mkdir(parents=True)
            subprocess.run(["git", "init", "-q", str(directory)], check=True)
            author = ["-c", "user.name=b", "-c", "user.email=b@localhost"]
            subprocess.run(
                ["git", *author, "commit", "-q", "--allow-empty", "-m", directory.name],
                cwd=directory,
                check=True,
            )
            params = {"directory": str(directory)}
            created = client.post("/session", params=params, json={"title": "idle"})
            session_id = created.raise_for_status().json()["id"]
            body = {"parts": [{"type": "text", "text": TWO_TURNS}], "agent": "build"}
            client.post(
                f"/session/{session_id}/prompt_async", params=params, json=body
            ).raise_for_status()


def measure(count: int, settle: float, window: float) -> dict[str, Any]:
    scratch = Path(tempfile.mkdtemp(prefix="indorch-idle-instances-"))
    fleet = Fleet(scratch)
    fleet.start(1)
    try:
        server = fleet.servers[0]
        assert server.pid is not None
        load_instances(server.url, scratch / "directories", count)
        time.sleep(settle)
        before, started = tree_cpu_seconds(server.pid), time.monotonic()
        time.sleep(window)
        per_second = (tree_cpu_seconds(server.pid) - before) / (time.monotonic() - started)
    finally:
        fleet.stop()
    return {"instances": count, "idle_cpu_seconds_per_second": round(per_second, 4)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.idle_instances", description=__doc__)
    parser.add_argument("--instances", default="0,12", help="comma-separated counts")
    parser.add_argument("--settle", type=float, default=20.0)
    parser.add_argument("--window", type=float, default=30.0)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    counts = [int(value) for value in args.instances.split(",")]
    rows = [measure(count, args.settle, args.window) for count in counts]
    base = rows[0]
    for row in rows[1:]:
        extra = row["instances"] - base["instances"]
        grown = row["idle_cpu_seconds_per_second"] - base["idle_cpu_seconds_per_second"]
        row["per_instance"] = round(grown / extra, 5) if extra else None
    table = Table(title="An OpenCode server idle, by instances loaded")
    for header in ("instances", "idle CPU-s per s", "per extra instance"):
        table.add_column(header, justify="right")
    for row in rows:
        per = row.get("per_instance")
        table.add_row(
            str(row["instances"]),
            f"{row['idle_cpu_seconds_per_second']:.4f}",
            "-" if per is None else f"{per:.5f}",
        )
    console = Console()
    console.print(table)
    argv_text = " ".join(sys.argv[1:] if argv is None else argv)
    document = {
        "command": f".venv/bin/python -m bench.idle_instances {argv_text}".strip(),
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": facts(),
        "rows": rows,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=2) + "\n")
    console.print(f"written: {args.output}")


if __name__ == "__main__":
    main()
