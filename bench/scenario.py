"""Running one scenario: a fresh database and agents, the worker process, its measurements.

The conductor (this process, a child subreaper) starts `python -m bench.worker`, samples the
worker's process tree while it works, and, once it has exited, reads the sessions' instants from
the database. Control-plane CPU is the tree's exact CPU time during the measured window (from
"go" to the last process's exit, so a run's teardown counts); memory per in-flight session is
(peak tree RSS - the tree's RSS just before "go") / the most sessions running at one instant.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import analysis
from bench.code_location import SESSION_WORKSPACES_VAR, TOP_UP_VAR, WAVE_SIZE_VAR
from bench.fleet import Fleet
from bench.launch import write_instance_yaml
from bench.procstat import TreeMonitor
from bench.runtime_world import (
    REPOSITORY,
    RuntimeAgents,
    RuntimeSetup,
    pushed_branches,
    runtime_world,
)
from bench.world import AGENT_CAPACITY, agents_per_tenant, database, register
from domain.supervision_policy import DEFAULT_WORKSPACES_PER_AGENT
from resources.settings import DATABASE_URL_VAR, REDIS_URL_VAR, STATE_DIR_VAR
from sensors.dispatch import TICK_INTERVAL_SECONDS
from standins.opencode_server import PROJECT_ROOT

READY_TIMEOUT_SECONDS = 180.0
BASELINE_SECONDS = 1.5


@dataclass(frozen=True)
class Scenario:
    key: str
    label: str
    mode: str  # floor | launched (a process per run) | worker (the run worker) | inprocess
    sessions: int
    prompt: str
    wave_size: int = 1
    top_up: bool = True  # waves take on new sessions while they run (False: the naive design)
    max_runs: int = 30
    per_server_concurrency: int = 0  # floor only
    # Floor only: each session in a scratch directory of its own, at most the orchestrator's
    # default workspaces per agent of them per server, reused (`bench.floor`, isolated).
    isolated: bool = False
    cold_worker: bool = False  # run worker only: started by the first measured launch
    # Tenant workspaces made before the burst by the agent-health sensor's tick (False: by the
    # tenants' first waves, inside the measured window, as before that sensor made them)
    workspaces_ahead: bool = True
    # Each submit tells its tenant's wave trigger (services.wave_trigger), which launches the
    # tenant's wave at once when it has none live, as with a Dagster webserver configured; the
    # dispatch sensor still ticks, the safety net (run worker and launched modes only).
    launch_on_submit: bool = False
    timeout_seconds: float = 1800.0
    note: str = ""
    runtimes: bool = False  # each tenant on its managed runtime, sessions on its repository
    # Each session in a workspace of its own (an OpenCode instance each), as by default; False:
    # the tenant's sessions share its worktree on each server (SESSION_WORKSPACES_VAR "0").
    session_workspaces: bool = True


@dataclass(frozen=True)
class Setting:
    scratch: Path
    tenants: list[str]
    db_kind: str
    postgres_url: str
    runtime_setup: RuntimeSetup | None = None  # for the runtime rows (root, secret key, users)


def run(scenario: Scenario, fleet: Fleet, setting: Setting, log: Any) -> dict[str, Any]:
    folder = setting.scratch / scenario.key
    folder.mkdir(parents=True, exist_ok=True)
    per_tenant = agents_per_tenant(scenario.sessions, len(setting.tenants), len(fleet.urls))
    with ExitStack() as stack:
        url = stack.enter_context(
            database(setting.db_kind, folder, scenario.key, setting.postgres_url)
        )
        agent_side: Fleet | RuntimeAgents = fleet
        if scenario.runtimes:
            assert setting.runtime_setup is not None, "the runtime rows need a RuntimeSetup"
            log(f"  {scenario.label}: starting a managed runtime per tenant")
            world, agent_side = stack.enter_context(
                runtime_world(url, setting.tenants, setting.runtime_setup, fleet.model_url, folder)
            )
        else:
            world = register(url, setting.tenants, fleet.urls, per_tenant)
        spec = {
            **asdict(scenario),
            "repository": REPOSITORY if scenario.runtimes else None,
            "database_url": url,
            "tenants": setting.tenants,
            "servers": fleet.urls,
            "tick_seconds": TICK_INTERVAL_SECONDS,
            "ready_path": str(folder / "ready"),
            "go_path": str(folder / "go"),
            "result_path": str(folder / "result.json"),
        }
        if scenario.mode == "floor" and not scenario.per_server_concurrency:
            spec["per_server_concurrency"] = max(world.capacity_per_server.values())
        if scenario.mode == "floor" and scenario.isolated:
            agents_on_server = max(world.capacity_per_server.values()) // AGENT_CAPACITY
            spec["directories_per_server"] = agents_on_server * DEFAULT_WORKSPACES_PER_AGENT
            spec["directories_root"] = str(folder / "floor-directories")
        measured = _measure(spec, folder, agent_side, log)
        if scenario.mode == "floor":
            timelines = analysis.floor_timelines(measured["result"]["floor_sessions"])
            runs = None
        else:
            timelines = analysis.orchestrated_timelines(url)
            runs = analysis.wave_runs(folder / "dagster_home")
        branches = pushed_branches(folder) if scenario.runtimes else None
    figures = analysis.session_figures(timelines, runs)
    summary = _summary(scenario, spec, world.agents, figures, measured)
    summary["branches_pushed"] = branches
    return summary


def _measure(
    spec: dict[str, Any], folder: Path, fleet: Fleet | RuntimeAgents, log: Any
) -> dict[str, Any]:
    dagster_home = folder / "dagster_home"
    write_instance_yaml(
        dagster_home,
        launcher="worker" if spec["mode"] == "worker" else "process",
        capture_compute_logs=spec["mode"] != "inprocess",
    )
    spec_path = folder / "spec.json"
    spec_path.write_text(json.dumps(spec, indent=2))
    env = {k: v for k, v in os.environ.items() if k != REDIS_URL_VAR}
    env.update(
        {
            "DAGSTER_HOME": str(dagster_home),
            DATABASE_URL_VAR: spec["database_url"],
            STATE_DIR_VAR: str(folder / "state"),
            WAVE_SIZE_VAR: str(spec["wave_size"]),
            TOP_UP_VAR: "1" if spec["top_up"] else "0",
            "PYTHONWARNINGS": "ignore",
        }
    )
    if not spec["session_workspaces"]:  # else as the bench's environment says (default: on)
        env[SESSION_WORKSPACES_VAR] = "0"
    agent_cpu_at_start = fleet.agent_side_cpu_seconds()
    with (folder / "worker.log").open("wb") as worker_log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "bench.worker", str(spec_path)],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=worker_log,
            stderr=subprocess.STDOUT,
        )
        monitor = TreeMonitor(worker.pid).start()
        try:
            _wait_ready(Path(spec["ready_path"]), worker, folder)
            time.sleep(BASELINE_SECONDS)
            window = monitor.rss_between(time.time() - BASELINE_SECONDS, time.time())
            baseline = statistics.median(s.rss_mb for s in window)
            cpu_at_go = monitor.cpu_so_far()
            sampled_at_go = monitor.sampled_cpu()
            own_cpu_at_go = monitor.own_cpu()
            agent_roles_at_go = fleet.agent_side_cpu_by_role()
            agent_cpu_at_go = sum(agent_roles_at_go.values())
            go_at = time.time()
            Path(spec["go_path"]).write_text("go")
            log(f"  {spec['label']}: running (worker pid {worker.pid}, log {folder}/worker.log)")
            status = monitor.wait_worker()
            worker.returncode = status  # reaped by the monitor, not by Popen
            agent_roles = cpu_by_role_since(agent_roles_at_go, fleet.agent_side_cpu_by_role())
            agent_cpu = sum(agent_roles.values())
            agent_rss = fleet.agent_side_rss_mb()
        finally:
            if worker.returncode is None:
                worker.kill()
                monitor.wait_worker()
                worker.returncode = -9
            monitor.finish()
    if status != 0 or not Path(spec["result_path"]).exists():
        raise RuntimeError(f"worker for {spec['key']} exited {status}; see {folder}/worker.log")
    result = json.loads(Path(spec["result_path"]).read_text())
    samples = monitor.rss_between(go_at, time.time())
    peak = max(samples, key=lambda s: s.rss_mb)
    return {
        "result": result,
        "cpu_seconds": monitor.cpu_seconds() - cpu_at_go,
        "cpu_seconds_sampled": monitor.sampled_cpu() - sampled_at_go,
        "cpu_seconds_by_process": monitor.cpu_by_role_since(own_cpu_at_go),
        "setup_cpu_seconds": cpu_at_go,
        "baseline_rss_mb": baseline,
        "peak_rss_mb": peak.rss_mb,
        "peak_processes": max(s.processes for s in samples),
        "agent_side_cpu_seconds": agent_cpu,
        "agent_side_cpu_by_role": agent_roles,
        # The agents' CPU while the worker got ready (warm-ups ahead of the burst: slots warmed).
        "agent_side_setup_cpu_seconds": agent_cpu_at_go - agent_cpu_at_start,
        "agent_side_rss_mb": agent_rss,
    }


def cpu_by_role_since(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Each role's CPU seconds between two readings."""
    return {role: round(value - before.get(role, 0.0), 2) for role, value in after.items()}


def _wait_ready(ready: Path, worker: subprocess.Popen[bytes], folder: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while not ready.exists():
        if worker.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"worker did not get ready; see {folder}/worker.log")
        time.sleep(0.05)


def _summary(
    scenario: Scenario,
    spec: dict[str, Any],
    agents: int,
    figures: dict[str, Any],
    measured: dict[str, Any],
) -> dict[str, Any]:
    result = measured["result"]
    sessions = max(figures["sessions"], 1)
    in_flight = figures["max_in_flight"]
    grown = measured["peak_rss_mb"] - measured["baseline_rss_mb"]
    return {
        "key": scenario.key,
        "label": scenario.label,
        "mode": scenario.mode,
        "note": scenario.note,
        "wave_size": scenario.wave_size if scenario.mode != "floor" else None,
        "top_up": scenario.top_up if scenario.mode != "floor" else None,
        "max_runs": scenario.max_runs if scenario.mode != "floor" else None,
        "cold_worker": scenario.cold_worker if scenario.mode == "worker" else None,
        "managed_runtimes": scenario.runtimes,
        "launch_on_submit": scenario.launch_on_submit,
        "per_server_concurrency": spec.get("per_server_concurrency") or None,
        "directories_per_server": spec.get("directories_per_server"),
        "agents": agents,
        "prompt": scenario.prompt,
        **{k: v for k, v in figures.items() if k not in ("first_submit", "last_end")},
        "runs": result.get("runs"),
        "runs_launched_on_submit": result.get("runs_launched_on_submit"),
        "failed_runs": result.get("failed_runs"),
        "timed_out": result.get("timed_out", False),
        "cpu_seconds": round(measured["cpu_seconds"], 2),
        "cpu_seconds_per_session": round(measured["cpu_seconds"] / sessions, 4),
        "cpu_seconds_sampled": round(measured["cpu_seconds_sampled"], 2),
        # Which processes spent it (sampled: sums to about `cpu_seconds_sampled`).
        "cpu_seconds_by_process": measured["cpu_seconds_by_process"],
        "setup_cpu_seconds": round(measured["setup_cpu_seconds"], 2),
        "baseline_rss_mb": round(measured["baseline_rss_mb"], 1),
        "peak_rss_mb": round(measured["peak_rss_mb"], 1),
        "peak_processes": measured["peak_processes"],
        "mb_per_in_flight_session": round(grown / in_flight, 3) if in_flight else None,
        "agent_side_cpu_seconds": round(measured["agent_side_cpu_seconds"], 1),
        # The servers' and the model's (the managed runtimes' in the runtime row).
        "agent_side_cpu_by_role": measured["agent_side_cpu_by_role"],
        "agent_side_setup_cpu_seconds": round(measured["agent_side_setup_cpu_seconds"], 1),
        "agent_side_rss_mb": measured["agent_side_rss_mb"],
    }
