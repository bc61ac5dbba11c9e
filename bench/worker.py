"""One measured scenario, run as its own process: `python -m bench.worker SPEC.json`.

The worker is the root of the measured control plane: everything it starts (Dagster's code
server, the runs it launches) is its descendant, and the conductor (`bench.sessions`) accounts
the whole tree's CPU and memory. Protocol: set up (imports, Dagster instance and workspace,
HTTP clients), write `ready_path`, wait for `go_path` (the conductor takes the baseline in
between), do the work, write `result_path`.

Modes:
- `floor`: the agent calls without orchestration (`bench.floor`).
- `launched`: sessions submitted through `SessionService`; the real `dispatch_sensor` evaluated
  every `tick_seconds` and the real `retry_sensor` every 5 s (as the daemon would); each
  RunRequest launched as a real run through the instance's DefaultRunLauncher (`bench.launch`).
- `worker`: the same, launched through the embedded default's `RunWorkerLauncher`: the runs
  execute in threads of the run worker, which an empty wave run starts and warms up before the
  baseline (a long-lived worker, as the daemon's is while runs come within its idle time), or,
  with `cold_worker`, the first measured launch starts (its whole start measured).
- `inprocess`: the same, but each wave run is `session_wave.execute_in_process` in a thread of
  this process: Dagster's run machinery without the run launcher's process start. Two things
  of Dagster's are not thread-safe and are switched off for it: compute-log capture (it
  redirects the process's stdout/stderr per run; `bench.launch`) and the per-run
  `logging.config.dictConfig` call (no python_logs are configured, so it adds no handlers).
"""

from __future__ import annotations

import asyncio
import faulthandler
import json
import logging
import os
import signal
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import dagster as dg
from sqlalchemy import and_, func, not_, select

from bench.code_location import WAVE_SIZE_VAR, bench_supervision
from bench.floor import ORCHESTRATOR_BODIES_VAR, REMADE_VAR, other_readers_from, run_floor
from bench.launch import RunLauncher, SubmitLaunches
from domain.caller import Caller
from orchestrator_defs.sensor_evaluation import sensor_context
from orchestrator_defs.sessions.job import session_wave
from resources.dagster_partitions import tenant_partitions
from resources.database import Database
from resources.database.schema import SessionRow
from resources.database_resource import DatabaseResource
from resources.debounce import InProcessDebounce
from resources.opencode.resource import OpenCodeResource
from resources.redis.resource import RedisResource
from sensors.agent_health import agent_health_sensor
from sensors.dispatch import dispatch_sensor
from sensors.retry import TICK_INTERVAL_SECONDS as RETRY_TICK_SECONDS
from sensors.retry import retry_sensor
from services.session_service import SessionService, SubmitSession
from services.wave_trigger import LaunchOnSubmit
from services.waves import WAVE_OP

PROJECT_ROOT = Path(__file__).resolve().parents[1]
FINAL = ("COMPLETED", "PARTIALLY_COMPLETED", "STOPPED", "CANCELLED")
RETRYABLE = ("FAILED", "TIMEOUT", "ORPHANED")  # the retry sensor sends these back, if retries left
RUN_POLL_SECONDS = 0.5


def prompt_for(template: str, number: int) -> str:
    return template.replace("{n}", str(number))


def resources_for(sensor: dg.SensorDefinition, resources: dict[str, Any]) -> dict[str, Any]:
    """The resources `sensor` asks for, as the daemon builds for its tick: only those (each is
    built anew per tick; the dispatch and retry sensors need no OpenCode resource)."""
    return {key: value for key, value in resources.items() if key in sensor.required_resource_keys}


def wait_for_go(spec: dict[str, Any]) -> float:
    Path(spec["ready_path"]).write_text("ready")
    go = Path(spec["go_path"])
    while not go.exists():
        time.sleep(0.02)
    return time.time()


def floor(spec: dict[str, Any]) -> dict[str, Any]:
    started = wait_for_go(spec)
    root = spec.get("directories_root")
    records = asyncio.run(
        run_floor(
            spec["servers"],
            spec["sessions"],
            spec["per_server_concurrency"],
            lambda n: prompt_for(spec["prompt"], n),
            directories=spec.get("directories_per_server") or 0,
            scratch=Path(root) if root else None,
            other_readers=other_readers_from(os.environ),
            remade=os.environ.get(REMADE_VAR) == "1",
            orchestrator_bodies=os.environ.get(ORCHESTRATOR_BODIES_VAR) == "1",
        )
    )
    return {"started_at": started, "ended_at": time.time(), "floor_sessions": records}


# The agent-health ticks before the baseline stop once one warms no slot, or after these.
MAX_HEALTH_TICKS_AHEAD = 60


class Orchestrated:
    """Submit, dispatch with the real sensor, run the waves; until every session has ended."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.database = Database(spec["database_url"])
        self.instance = dg.DagsterInstance.get()
        # With `launch_on_submit`, each submit tells the tenant's wave trigger, which launches
        # its wave at once into this bench's run queue (no webserver here: `SubmitLaunches`).
        self.submit_launches: SubmitLaunches | None = None
        self.trigger: LaunchOnSubmit | None = None
        if spec.get("launch_on_submit"):
            self.submit_launches = SubmitLaunches(self.instance)
            self.trigger = LaunchOnSubmit(self.submit_launches, InProcessDebounce())
        self.service = SessionService(self.database, wave_trigger=self.trigger)
        # Counting every tenant's sessions needs no tenant scope (no RLS: app_role=None).
        self.counter = Database(spec["database_url"], app_role=None)
        self.instance.add_dynamic_partitions(tenant_partitions.name, spec["tenants"])
        self.resources = {
            "database": DatabaseResource(url=spec["database_url"]),
            "opencode": OpenCodeResource(),
            "supervision": bench_supervision(),
            "redis": RedisResource(url=None),
        }
        self._sensor_resources: dict[str, dict[str, Any]] = {}
        self.launcher: RunLauncher | None = None
        self.pool: ThreadPoolExecutor | None = None
        self.futures: list[Future[bool]] = []
        if spec["mode"] in ("launched", "worker"):
            self.launcher = RunLauncher(self.instance, PROJECT_ROOT, spec["max_runs"])
        else:
            self.pool = ThreadPoolExecutor(spec["max_runs"], thread_name_prefix="wave")
            # Every run start calls `logging.config.dictConfig` (the instance's python_logs
            # handlers), even when none are configured; with runs starting in several threads
            # that deadlocks against another thread's log emission. This instance configures
            # no python_logs, so the answer is the same without the call: no handlers.
            self.instance.get_yaml_python_handlers = list  # type: ignore[method-assign]
        self.submitted = 0
        self.submit_error = ""

    def submit_all(self) -> None:
        tenants = self.spec["tenants"]
        try:
            for number in range(self.spec["sessions"]):
                request = SubmitSession(
                    title=f"bench {number}",
                    prompt=prompt_for(self.spec["prompt"], number),
                    repository=self.spec.get("repository"),
                )
                self.service.submit(Caller.operator(), tenants[number % len(tenants)], request)
                self.submitted += 1
        except Exception as error:
            self.submit_error = repr(error)
            raise

    def _resources_of(self, sensor: dg.SensorDefinition) -> dict[str, Any]:
        """One dict per sensor, kept: `sensor_context` builds its definitions once per dict."""
        if sensor.name not in self._sensor_resources:
            self._sensor_resources[sensor.name] = resources_for(sensor, self.resources)
        return self._sensor_resources[sensor.name]

    def health_tick(self) -> str:
        with sensor_context(self.instance, self._resources_of(agent_health_sensor)) as context:
            return agent_health_sensor.evaluate_tick(context).skip_message or ""

    def retry_tick(self) -> None:
        with sensor_context(self.instance, self._resources_of(retry_sensor)) as context:
            retry_sensor.evaluate_tick(context)

    def tick(self) -> int:
        with sensor_context(self.instance, self._resources_of(dispatch_sensor)) as context:
            result = dispatch_sensor.evaluate_tick(context)
        requests = list(result.run_requests or [])
        if self.launcher is not None:
            self.launcher.enqueue(requests)
        else:
            assert self.pool is not None
            self.futures += [self.pool.submit(self._in_process, r) for r in requests]
        return len(requests)

    def _in_process(self, request: dg.RunRequest) -> bool:
        result = session_wave.execute_in_process(
            run_config=request.run_config,
            resources=self.resources,
            instance=self.instance,
            tags=request.tags,
            raise_on_error=False,
        )
        return result.success

    def unfinished(self) -> int:
        """Sessions that may still change: not final, and not failed for good."""
        failed_for_good = and_(
            SessionRow.status.in_(RETRYABLE), SessionRow.retry_count >= SessionRow.max_retries
        )
        query = select(func.count()).where(SessionRow.status.not_in(FINAL), not_(failed_for_good))
        with self.counter.transaction() as session:
            return int(session.scalar(query) or 0)

    def runs_idle(self) -> bool:
        if self.submit_launches is not None and self.launcher is not None:
            self.launcher.enqueue(self.submit_launches.take())
        if self.launcher is not None:
            self.launcher.poll()
            return self.launcher.idle
        return all(future.done() for future in self.futures)

    def warm_up(self) -> None:
        """Before the baseline: one dispatch tick (nothing to claim yet), the agent-health
        ticks the daemon's (every 15 s) would have made since the agents were registered
        (each tenant's workspace on its agents' servers, or, with sessions in workspaces of
        their own, each agent's scratch slots warmed: until a tick warms none) and, in process
        or in the run worker, one empty wave run, so Dagster's lazily imported execution code
        is loaded before we measure (a long-lived worker pays that once: the daemon's worker
        stays while runs come within its idle time; launched runs pay it in every run
        process). `cold_worker`: the run worker is started by the first measured launch."""
        self.tick()
        self.retry_tick()
        if self.spec.get("workspaces_ahead", True):
            for _ in range(MAX_HEALTH_TICKS_AHEAD):
                said = self.health_tick()
                print(f"agent-health tick: {said}", flush=True)
                if "warmed" not in said:
                    break
        config = {"tenant": self.spec["tenants"][0], "session_ids": [], "wave_id": "warm-up"}
        warm_up_run = dg.RunRequest(run_config={"ops": {WAVE_OP: {"config": config}}})
        if self.pool is not None:
            self._in_process(warm_up_run)
        elif self.spec["mode"] == "worker" and not self.spec.get("cold_worker"):
            assert self.launcher is not None
            self.launcher.enqueue([warm_up_run])
            while not self.launcher.idle:
                self.launcher.poll()
                time.sleep(0.1)
            if self.launcher.failed:
                raise RuntimeError("the run worker's warm-up run failed")
            self.launcher.launched.clear()

    def run(self) -> dict[str, Any]:
        self.warm_up()
        started = wait_for_go(self.spec)
        submitter = threading.Thread(target=self.submit_all, name="submitter")
        submitter.start()
        deadline = time.monotonic() + self.spec["timeout_seconds"]
        # The daemon's ticks are not in step with submissions: the first one comes a tick later.
        next_tick = time.monotonic() + self.spec["tick_seconds"]
        next_retry_tick = time.monotonic() + RETRY_TICK_SECONDS
        ticks = timed_out = 0
        while True:
            now = time.monotonic()
            if now >= next_retry_tick:
                self.retry_tick()
                next_retry_tick = now + RETRY_TICK_SECONDS
            if now >= next_tick:
                self.tick()
                ticks += 1
                next_tick = now + self.spec["tick_seconds"]
            idle = self.runs_idle()
            if not submitter.is_alive() and idle and self.unfinished() == 0:
                break
            if now > deadline:
                timed_out = 1
                break
            time.sleep(RUN_POLL_SECONDS)
        submitter.join()
        ended = time.time()
        return {
            "started_at": started,
            "ended_at": ended,
            "ticks": ticks,
            "timed_out": bool(timed_out),
            "submitted": self.submitted,
            "submit_error": self.submit_error,
            "runs_launched_on_submit": self.submit_launches.launched
            if self.submit_launches
            else None,
            **self._runs(),
        }

    def _runs(self) -> dict[str, Any]:
        if self.launcher is not None:
            return {"runs": len(self.launcher.launched), "failed_runs": len(self.launcher.failed)}
        failed = sum(1 for f in self.futures if not f.done() or f.exception() or not f.result())
        return {"runs": len(self.futures), "failed_runs": failed}

    def close(self) -> None:
        if self.launcher is not None:
            self.launcher.close()
        if self.pool is not None:
            self.pool.shutdown(wait=True)
        self.database.dispose()
        self.counter.dispose()


def main(argv: list[str] | None = None) -> None:
    spec_path = Path((argv or sys.argv[1:])[0])
    spec = json.loads(spec_path.read_text())
    logging.basicConfig(level=logging.WARNING)
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1 <pid>`: stacks to log
    if spec["mode"] == "floor":
        result = floor(spec)
    else:
        os.environ[WAVE_SIZE_VAR] = str(spec["wave_size"])
        orchestrated = Orchestrated(spec)
        try:
            result = orchestrated.run()
        finally:
            orchestrated.close()
    Path(spec["result_path"]).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
