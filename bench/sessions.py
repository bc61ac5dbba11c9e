"""Sessions through the orchestrator, against the same agent calls made directly, in one run.

    .venv/bin/python -m bench.sessions [--sessions 300] [--servers 3] [--tenants 3] [--quick]

Agent side (not measured as control plane): the scripted model (`standins.scripted_model`,
instant answers) and K real OpenCode servers, restarted fresh and warmed up before each scenario.
The unit of work is a two-turn session: `[script:write ...]` makes the model call OpenCode's
`write` tool, then answer (plus OpenCode's own title call: three model requests).

Scenarios, each in its own worker process whose whole process tree is measured:

1. **floor** -- the agent calls without orchestration (`bench.floor`).
1a. **the floor, isolated** (`floor_isolated`): the same calls, each session in a scratch
   directory of its own as the orchestrator's default gives it, at most 8 per agent on a server
   (the default `workspaces_per_agent`), reused: the floor of the default configuration, which
   the orchestrated rows' throughput and CPU are compared with (the unisolated floor's share is
   the cost of isolation).
2. **wave size 1, launched** -- the naive design: one real Dagster run per session, launched
   through the instance's DefaultRunLauncher (a run process each; waves do not top up).
   Fewer sessions (`--wave1-sessions`); rates are per session.
3. **default wave size, a process per run** -- `SupervisionConfig().wave_size` sessions per real
   run, each run a process of its own (DefaultRunLauncher).
4. **default wave size, run worker** -- the same runs launched as the embedded default launches
   them (`RunWorkerLauncher`): executed in threads of one run worker process, warmed up before
   the baseline by one empty wave run, as a long-lived worker is (`--cold-run-worker`: started
   by the first measured launch instead). Each tenant's workspace on its agents' servers is
   made before the burst by one agent-health tick, as the daemon's would have since the agents
   were registered.
4a. **the same, launched on submit** (`worker_triggered`): each submit tells its tenant's wave
   trigger (`services.wave_trigger.LaunchOnSubmit`), which launches the tenant's wave at once
   when it has none live instead of leaving it to the next dispatch tick (the sensor still
   ticks, as the safety net). The bench has no webserver: the trigger's launch is the
   equivalent in-process one (`bench.launch.SubmitLaunches`): the run request joins the bench's
   run queue at once, as `launchRun` queues a run for the daemon. Run only when named.
4b. **the same, workspaces made by the first waves** (`worker_late_workspaces`): without that
   tick, each tenant's first wave makes them inside the measured window (as before the sensor
   made them). Run only when named in `--only`; a comparison only with sessions in their
   tenant's worktree (`INDORCH_BENCH_SESSION_WORKSPACES=0`: by default each has its own, and
   no tenant worktree is made).
5. **default wave size, run worker, managed runtimes** -- the run worker row with each tenant
   on its own managed runtime (its OS user, bubblewrap, a real `opencode serve`, one agent of
   capacity 50) instead of the shared servers, every session on the tenant's repository (served
   by `git http-backend` over HTTP with credentials): its own worktree on `indorch/<id>` inside
   the runtime (git as the tenant's user in its sandbox), committed and pushed when it completes
   (`bench.runtime_world`; root and bubblewrap needed, else the row is left out).
6. **default wave size, in process** -- each wave `execute_in_process` in a thread of the bench's
   own process: Dagster's run machinery with no launcher at all (for comparison).
7. **in flight** -- `--inflight` sessions held by the model (`[script:slow seconds=H]`), agents
   registered so that all fit at once (capacity 50 each, several per server), one wave per
   tenant by default (`--inflight-wave-size`), runs in the run worker (`--inflight-mode`:
   `launched` for a process per run, about 130 MB each; `inprocess`); how many were really in
   flight at once is measured. The sessions share their tenant's worktree on each server: each
   in a workspace of its own would be an OpenCode instance each, a thousand on three servers
   (the row measures the control plane's memory per held session, not the servers').

The orchestrated scenarios evaluate the real `dispatch_sensor` every 2 s and `retry_sensor`
every 5 s, as the daemon would (sessions that fail an attempt are retried; the table counts
them). The bench plays the run queue: at most `--max-runs` runs in progress, launched one after
another as the daemon's default queue does; the per-tenant tag limit is not applied.

Metrics: sessions/min (completed / (last end - first submit)), submit -> prompt-delivered
latency p50/p95 (`agent.prompted` - `created_at`), control-plane CPU seconds per session and
MB per in-flight session (`bench.scenario`). Results: a table on stdout and
`bench/results/sessions.json`. Linux only (/proc, prctl).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console

from bench import report
from bench.fleet import Fleet
from bench.procstat import become_subreaper
from bench.runtime_world import RuntimeSetup
from bench.runtime_world import problem as runtime_problem
from bench.scenario import Scenario, Setting
from bench.scenario import run as run_scenario
from bench.world import tenant_slugs
from resources.supervision_config import SupervisionConfig

RESULTS = Path(__file__).resolve().parent / "results" / "sessions.json"
TWO_TURNS = '[script:write path=bench/s{n}.md content="bench {n}\\n" reply="Written."] Note {n}.'
HELD = '[script:slow seconds={hold} reply="Held."] Hold {{n}}.'
PRODUCTION_MAX_RUNS = 30  # deploy/dagster.yaml: max_concurrent_runs
NAMED_ONLY = frozenset({"worker_triggered", "worker_late_workspaces"})


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.sessions", description=__doc__)
    parser.add_argument("--sessions", type=int, default=300, help="sessions per main scenario")
    parser.add_argument("--servers", type=int, default=3, help="OpenCode servers")
    parser.add_argument("--tenants", type=int, default=3)
    parser.add_argument("--wave1-sessions", type=int, default=40)
    parser.add_argument("--inflight", type=int, default=1000, help="sessions held at once")
    parser.add_argument("--hold-seconds", type=float, default=90.0)
    parser.add_argument(
        "--inflight-wave-size",
        type=int,
        default=0,
        help="wave size of the in-flight run (default: one wave per tenant)",
    )
    parser.add_argument(
        "--inflight-mode",
        choices=("worker", "launched", "inprocess"),
        default="worker",
        help="how the in-flight run's waves run",
    )
    parser.add_argument("--max-runs", type=int, default=PRODUCTION_MAX_RUNS)
    parser.add_argument(
        "--inflight-max-runs",
        type=int,
        default=0,
        help="runs in progress at once in the in-flight run (default: no limit)",
    )
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated scenario keys "
        "(floor,floor_isolated,wave1,wave,worker,worker_triggered,worker_late_workspaces,"
        "runtime,inprocess,inflight)",
    )
    parser.add_argument(
        "--cold-run-worker",
        action="store_true",
        help="the run worker is started by the first measured launch (default: warmed up with "
        "one empty wave run before the baseline, as a long-lived worker is)",
    )
    parser.add_argument("--quick", action="store_true", help="a ~1-2 minute smoke run")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory (logs)")
    args = parser.parse_args(argv)
    if args.quick:  # every scenario, tiny, on servers that are not restarted in between
        args.sessions, args.servers, args.wave1_sessions = 12, 2, 2
        args.inflight, args.hold_seconds = 40, 5.0
    return args


def plan(args: argparse.Namespace) -> list[Scenario]:
    wave = SupervisionConfig().wave_size
    n = args.sessions
    # Waves of the in-flight run all at once: as many threads (or runs) as there can be waves.
    inflight_runs = args.inflight_max_runs or args.inflight
    inflight_wave = args.inflight_wave_size or math.ceil(args.inflight / args.tenants)
    scenarios = [
        Scenario("floor", "floor: direct agent calls", "floor", n, TWO_TURNS),
        Scenario(
            "floor_isolated",
            "floor: direct agent calls, a scratch directory each (8 per agent)",
            "floor",
            n,
            TWO_TURNS,
            isolated=True,
        ),
        Scenario(
            "wave1",
            "wave size 1, launched runs",
            "launched",
            args.wave1_sessions,
            TWO_TURNS,
            wave_size=1,
            top_up=False,
            max_runs=args.max_runs,
        ),
        Scenario(
            "wave",
            f"wave size {wave}, a process per run",
            "launched",
            n,
            TWO_TURNS,
            wave_size=wave,
            max_runs=args.max_runs,
        ),
        Scenario(
            "worker",
            f"wave size {wave}, run worker",
            "worker",
            n,
            TWO_TURNS,
            wave_size=wave,
            max_runs=args.max_runs,
            cold_worker=args.cold_run_worker,
        ),
        Scenario(
            "worker_triggered",
            f"wave size {wave}, run worker, launched on submit",
            "worker",
            n,
            TWO_TURNS,
            wave_size=wave,
            max_runs=args.max_runs,
            cold_worker=args.cold_run_worker,
            launch_on_submit=True,
        ),
        Scenario(
            "worker_late_workspaces",
            f"wave size {wave}, run worker, workspaces made by the first waves",
            "worker",
            n,
            TWO_TURNS,
            wave_size=wave,
            max_runs=args.max_runs,
            cold_worker=args.cold_run_worker,
            workspaces_ahead=False,
        ),
        Scenario(
            "runtime",
            f"wave size {wave}, run worker, managed runtimes + worktrees",
            "worker",
            n,
            TWO_TURNS,
            wave_size=wave,
            max_runs=args.max_runs,
            cold_worker=args.cold_run_worker,
            runtimes=True,
            note="one runtime (agent of capacity 50) per tenant; a worktree and a pushed branch "
            "per session",
        ),
        Scenario(
            "inprocess",
            f"wave size {wave}, in-process runs",
            "inprocess",
            n,
            TWO_TURNS,
            wave_size=wave,
            max_runs=args.max_runs,
        ),
        Scenario(
            "inflight",
            f"{args.inflight} held, wave size {inflight_wave}, {args.inflight_mode}",
            args.inflight_mode,
            args.inflight,
            HELD.format(hold=args.hold_seconds),
            wave_size=inflight_wave,
            max_runs=inflight_runs,
            cold_worker=args.cold_run_worker,
            session_workspaces=False,
            note=f"model holds each reply {args.hold_seconds:g} s; sessions in their tenant's "
            "worktree (each in its own would be an OpenCode instance each)",
        ),
    ]
    only = {key.strip() for key in args.only.split(",") if key.strip()}
    if not only:  # comparisons for the latency work, run when named
        return [s for s in scenarios if s.key not in NAMED_ONLY]
    return [s for s in scenarios if s.key in only]


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # through the `finally` blocks: servers and workers stop


def run(args: argparse.Namespace, command: str, console: Console) -> dict[str, Any]:
    """Every planned scenario, one after another; the results document (also for `bench`)."""
    signal.signal(signal.SIGTERM, _exit_on_signal)
    become_subreaper()
    scenarios = plan(args)
    if any(scenario.runtimes for scenario in scenarios) and (problem := runtime_problem()):
        if args.only:
            sys.exit(f"the runtime row cannot run here: {problem}")
        console.log(f"leaving out the managed-runtime row: {problem}")
        scenarios = [scenario for scenario in scenarios if not scenario.runtimes]
    scratch = Path(tempfile.mkdtemp(prefix="indorch-bench-"))
    setting = Setting(scratch, tenant_slugs(args.tenants), args.database, args.postgres_url)
    fleet = Fleet(scratch)
    results: list[dict[str, Any]] = []
    started = time.time()
    runtimes = ExitStack()
    try:
        if any(scenario.runtimes for scenario in scenarios):
            setting = replace(
                setting, runtime_setup=runtimes.enter_context(RuntimeSetup.made(setting.tenants))
            )
        console.log(f"starting the scripted model and {args.servers} OpenCode servers")
        fleet.start(args.servers)
        for number, scenario in enumerate(scenarios):
            if number and not args.quick:
                fleet.restart_servers()
            console.log(f"{scenario.label}: {scenario.sessions} sessions")
            outcome = run_scenario(scenario, fleet, setting, console.log)
            results.append(outcome)
            console.log(report.one_line(outcome))
    finally:
        fleet.stop()
        runtimes.close()
        if args.keep:
            console.log(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    return {
        "command": command,
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": round(time.time() - started, 1),
        "machine": {
            "cpus": os.cpu_count(),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "python": platform.python_version(),
        },
        "settings": {
            "servers": args.servers,
            "tenants": args.tenants,
            "database": args.database,
            "default_wave_size": SupervisionConfig().wave_size,
            "max_concurrent_runs": args.max_runs,
        },
        "scenarios": results,
        "comparisons": report.comparisons(results),
    }


BENCH_VARIABLES = "INDORCH_BENCH_"  # the code location's settings for experiments


def command_line(argv: list[str], environment: Mapping[str, str] | None = None) -> str:
    """How to run it again, with the bench settings of `environment` (default: ours)."""
    environment = os.environ if environment is None else environment
    settings = [
        f"{name}={shlex.quote(value)}"
        for name, value in sorted(environment.items())
        if name.startswith(BENCH_VARIABLES)
    ]
    return " ".join([*settings, ".venv/bin/python -m bench.sessions", *map(shlex.quote, argv)])


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    console = Console(width=170)
    document = run(args, command_line(argv), console)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=2) + "\n")
    report.print_tables(console, document)
    console.print(f"written: {args.output}")


if __name__ == "__main__":
    main()
