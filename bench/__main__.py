"""One benchmark report: the session, learning-loop and API benches in one run, one table.

    .venv/bin/python -m bench [--quick] [--only sessions,learning,api,api_events]
        [--database sqlite|postgres] [--redis-url redis://127.0.0.1:6379/6]

Runs each bench by calling it (`bench.learning`, `bench.api`, `bench.api_events`,
`bench.sessions`, in that order: the learning bench reads its own peak RSS, taken before the
others grow the process), then writes one report: a table on the terminal,
`bench/results/report.json` (every figure with its same-run baseline, ratio, issue target and
whether it is met, each bench's command and whole results document, the machine with its load
average at the start and the end) and its Markdown beside it (`report.md`, for the README's
"Performance"). The benches' own results files are left as they are.

`--quick` should finish in a few minutes on 2 idle cores, the default (full) scale in about 20.
`--database` is the application database of the sessions, learning and SSE benches; the API
bench measures SQLite and PostgreSQL both, as its issue asks. A bench that fails is reported as
not measured; the others still are.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from bench import api, api_events, learning, machine, sessions, summary

RESULTS = Path(__file__).resolve().parent / "results" / "report.json"
BENCHES = ("learning", "api", "api_events", "sessions")
# The floors (direct; a directory each, the default configuration's), the naive design, the
# default, held.
SESSION_ROWS = "floor,floor_isolated,wave1,worker,inflight"


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick", action="store_true", help="small runs: a few minutes instead of ~20"
    )
    parser.add_argument(
        "--only", default=",".join(BENCHES), help=f"comma-separated, of: {', '.join(BENCHES)}"
    )
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--redis-url", default=os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/6")
    )
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--output", type=Path, default=RESULTS, help="the report's JSON")
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.only.split(",") if name.strip()]
    if unknown := sorted(set(names) - set(BENCHES)):
        parser.error(f"unknown bench {', '.join(unknown)}; choose from {', '.join(BENCHES)}")
    if not names:
        parser.error(f"--only names no bench; choose from {', '.join(BENCHES)}")
    args.only = [name for name in BENCHES if name in names]
    return args


def plan(args: argparse.Namespace) -> dict[str, list[str]]:
    """Each chosen bench's own command-line arguments at the chosen scale."""
    database = ["--database", args.database]
    postgres = ["--postgres-url", args.postgres_url]
    redis = ["--redis-url", args.redis_url]
    if args.quick:
        arguments = {
            "learning": ["--sessions", "1000", "--eval-items", "50", *database],
            "api": ["--requests", "300", "--warmup", "50"],
            "api_events": ["--readers", "200", "--events", "20", "--client-processes", "2"],
            "sessions": ["--quick"],
        }
    else:
        arguments = {"learning": database, "api": [], "api_events": [], "sessions": []}
    arguments["api"] += ["--databases", "sqlite,postgres", *redis, *postgres]
    arguments["api_events"] += [*database, *redis, *postgres]
    arguments["sessions"] += ["--only", SESSION_ROWS, *database, *postgres]
    if args.database == "postgres":
        arguments["learning"] += postgres
    return {name: arguments[name] for name in args.only}


def _python_m(module: str, argv: list[str]) -> str:
    return " ".join([".venv/bin/python -m", module, *map(shlex.quote, argv)])


def run_learning(argv: list[str], _console: Console) -> dict[str, Any]:
    return learning.run(learning.parse(argv))


def run_api(argv: list[str], _console: Console) -> dict[str, Any]:
    return api.run(api.parse(argv), _python_m("bench.api", argv))


def run_api_events(argv: list[str], _console: Console) -> dict[str, Any]:
    arguments = api_events.parse(argv)
    return {
        "command": _python_m("bench.api_events", argv),
        "arguments": vars(arguments) | {"postgres_url": "(given)"},
        "figures": api_events.run(arguments),
    }


def run_sessions(argv: list[str], console: Console) -> dict[str, Any]:
    return sessions.run(sessions.parse(argv), sessions.command_line(argv), console)


RUNNERS: dict[str, Callable[[list[str], Console], dict[str, Any]]] = {
    "learning": run_learning,
    "api": run_api,
    "api_events": run_api_events,
    "sessions": run_sessions,
}


def _database(args: argparse.Namespace, benches: list[str], sqlite_version: str) -> str:
    """Which database each bench used, with the servers' versions."""
    parts = []
    application = [name for name in benches if name != "api"]
    sqlite = f"SQLite {sqlite_version}"
    if "api" in benches or args.database == "postgres":
        postgres = "PostgreSQL " + machine.postgres_version(args.postgres_url)
    if application:
        chosen = sqlite if args.database == "sqlite" else postgres
        parts.append(f"{chosen} ({', '.join(application)})")
    if "api" in benches:
        parts.append(f"{sqlite} and {postgres} (api)")
    if {"api", "api_events"} & set(benches):
        parts.append(f"Redis {machine.redis_version(args.redis_url)}")
    return "; ".join(parts)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    console = Console(width=170)
    facts = machine.facts()
    facts["database"] = _database(args, args.only, facts["sqlite"])
    started = time.monotonic()
    documents: dict[str, dict[str, Any]] = {}
    failures: dict[str, str] = {}
    for name, bench_argv in plan(args).items():
        console.rule(f"{name}: {' '.join(bench_argv)}")
        try:
            documents[name] = RUNNERS[name](bench_argv, console)
        except Exception as error:  # the other benches still measure
            traceback.print_exc()
            failures[name] = f"{type(error).__name__}: {error}"
    facts["load_average"]["end"] = machine.load_average()
    facts["seconds"] = round(time.monotonic() - started, 1)
    command = _python_m("bench", argv)
    document = summary.assemble(
        documents, facts, command, "quick" if args.quick else "full", failures
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=2) + "\n")
    args.output.with_suffix(".md").write_text(summary.markdown(document))
    console.print(summary.rich_table(document))
    for name, failure in failures.items():
        console.print(f"[red]not measured: {name}: {failure}[/red]")
    console.print(f"written: {args.output} and {args.output.with_suffix('.md').name}")
    if failures:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
