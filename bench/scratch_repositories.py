"""What making a scratch slot's repository again costs the control plane: by git (`init` and an
empty `commit`, two processes) against a copy of the repository git first made for that slot
(`GitCheckouts.init_scratch` with `kept_at`, what a session start does outside managed runtimes).

    .venv/bin/python -m bench.scratch_repositories [--repeats 200] [--rounds 4]

Both ways run the product's `init_scratch` on the same slot directories, alternating in rounds
(the machine is shared: compare within one run). Measured per repository made: the CPU of this
process and of the processes it waited for (`getrusage`, self and children) and the wall time.
Results: a table and `bench/results/scratch_repositories.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.machine import facts
from resources.git.checkout import GitCheckouts
from resources.git.command_runner import LocalCommandRunner

RESULTS = Path(__file__).resolve().parent / "results" / "scratch_repositories.json"
SLOTS = 8  # slot directories made again in turn, as an agent's slots are
WAYS = ("git", "kept copy")


def _cpu_seconds() -> float:
    own, children = (
        resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


async def _make(
    git: GitCheckouts, slots: list[Path], kept: Path | None, repeats: int
) -> tuple[float, float]:
    """CPU and wall seconds for `repeats` repositories made on `slots` in turn."""
    cpu, wall = _cpu_seconds(), time.perf_counter()
    for number in range(repeats):
        slot = slots[number % len(slots)]
        await git.init_scratch(slot, None if kept is None else kept / slot.name)
    return _cpu_seconds() - cpu, time.perf_counter() - wall


async def measure(root: Path, repeats: int, rounds: int) -> dict[str, Any]:
    git = GitCheckouts(LocalCommandRunner(), root / "home")
    (root / "home").mkdir()
    slots = [root / "sessions" / f"slot-bench-{n}" for n in range(SLOTS)]
    kept = root / "locks" / "slot-repositories"
    await _make(git, slots, kept, SLOTS)  # each slot's repository made by git once, and kept
    per_way: dict[str, dict[str, list[float]]] = {way: {"cpu": [], "wall": []} for way in WAYS}
    for round_number in range(rounds):
        order = WAYS if round_number % 2 == 0 else tuple(reversed(WAYS))
        for way in order:
            cpu, wall = await _make(git, slots, kept if way == "kept copy" else None, repeats)
            per_way[way]["cpu"].append(cpu / repeats)
            per_way[way]["wall"].append(wall / repeats)
    return {
        way: {
            "cpu_ms": round(statistics.median(figures["cpu"]) * 1000, 2),
            "wall_ms": round(statistics.median(figures["wall"]) * 1000, 2),
            "cpu_ms_per_round": [round(value * 1000, 2) for value in figures["cpu"]],
        }
        for way, figures in per_way.items()
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scratch_repositories", description=__doc__
    )
    parser.add_argument("--repeats", type=int, default=200, help="repositories per way per round")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="indorch-scratch-bench-"))
    try:
        figures = asyncio.run(measure(root, args.repeats, args.rounds))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    argv_text = " ".join(sys.argv[1:] if argv is None else argv)
    document = {
        "command": f".venv/bin/python -m bench.scratch_repositories {argv_text}".strip(),
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": facts(),
        "repeats": args.repeats,
        "rounds": args.rounds,
        "ways": figures,
        "cpu_ratio_kept_to_git": round(
            figures["kept copy"]["cpu_ms"] / figures["git"]["cpu_ms"], 2
        ),
    }
    table = Table(title="A scratch slot's repository made again (median of the rounds)")
    for header in ("way", "CPU ms (this process + git)", "wall ms"):
        table.add_column(header, justify="left" if header == "way" else "right")
    for way in WAYS:
        table.add_row(way, f"{figures[way]['cpu_ms']:.2f}", f"{figures[way]['wall_ms']:.2f}")
    console = Console()
    console.print(table)
    console.print(f"kept copy / git, CPU: {document['cpu_ratio_kept_to_git']}x")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=2) + "\n")
    console.print(f"written: {args.output}")


if __name__ == "__main__":
    main()
