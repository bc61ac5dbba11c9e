"""Sensor tick cost: the dispatch, retry, webhook and agent-health ticks at 1,000 idle tenants;
10,000 queued.

    .venv/bin/python -m bench.sensor_ticks [--tenants 1000] [--sessions 10000]
        [--databases sqlite,postgres] [--ticks 10] [--old-ticks 3] [--skip-queued]
        [--postgres-url postgresql://postgres@127.0.0.1:5432/postgres] 2>/dev/null

(stderr: the dispatch sensor logs every wave it forms, 10,000 session ids in the second part.)

Each scenario gets a fresh migrated database (`bench.world.database`; PostgreSQL as the
application role, under row-level security). The sensors are evaluated as the daemon does, one
`build_sensor_context` per tick on a real Dagster instance (resources built and torn down per
tick), without launching the runs: the sessions only need claiming.

1. **idle** -- `--tenants` tenants with history (two COMPLETED sessions and one FAILED out of
   retries each), no agent, and nothing to do: `--ticks` dispatch, retry, webhook delivery and
   agent-health ticks. With
   `--old-ticks`, the loops the sensors ran before (every active tenant, one or two transactions
   each; replayed here with the same services and a fresh resource, outside a sensor context)
   are timed too, on the same data, for comparison.
2. **queued** -- `--sessions` PENDING sessions spread over `--tenants` tenants: dispatch ticks,
   back to back, until every session is claimed. Every tick's duration is kept (max, p95).

Results: a table on stdout and `bench/results/sensor_ticks.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
from rich.console import Console
from rich.table import Table

from bench.world import TENANT_LIMIT, database
from domain.caller import Caller
from domain.session import Session, SessionStatus
from domain.tenant import Tenant
from orchestrator_defs.sensor_evaluation import sensor_context
from resources.database import Database, tenant_scope, unit_of_work
from resources.database_resource import DatabaseResource
from resources.opencode.resource import OpenCodeResource
from resources.redis.resource import RedisResource
from resources.supervision_config import SupervisionConfig
from sensors.agent_health import TICK_INTERVAL_SECONDS as HEALTH_INTERVAL
from sensors.agent_health import agent_health_sensor
from sensors.dispatch import TICK_INTERVAL_SECONDS as DISPATCH_INTERVAL
from sensors.dispatch import dispatch_sensor, tenant_waves
from sensors.retry import TICK_INTERVAL_SECONDS as RETRY_INTERVAL
from sensors.retry import retry_sensor
from sensors.webhooks import PER_TENANT_PER_TICK, webhook_delivery_sensor
from sensors.webhooks import TICK_INTERVAL_SECONDS as WEBHOOK_INTERVAL
from services.request_settlement import CoordinationService
from services.session_service import SessionService
from services.webhooks import Webhooks

RESULTS = Path(__file__).parent / "results" / "sensor_ticks.json"
SUPERVISION = SupervisionConfig()
MAX_TICKS = 5000  # a stuck dispatch ends the scenario rather than the bench


def _seconds_stats(durations: list[float]) -> dict[str, Any]:
    ordered = sorted(durations)
    p95 = ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered)) - 1))]
    return {
        "ticks": len(ordered),
        "mean_s": round(statistics.fmean(ordered), 4),
        "p50_s": round(statistics.median(ordered), 4),
        "p95_s": round(p95, 4),
        "max_s": round(ordered[-1], 4),
        "all_s": [round(d, 4) for d in durations],
    }


def _tenants(db: Database, count: int) -> list[str]:
    slugs = [f"bench-{number:05d}" for number in range(1, count + 1)]
    with unit_of_work(db) as uow:
        for slug in slugs:
            uow.tenants.add(Tenant(slug=slug, name=slug, max_concurrent_sessions=TENANT_LIMIT))
    return slugs


def _sessions(db: Database, tenant: str, sessions: list[dict[str, Any]]) -> None:
    with tenant_scope(tenant), unit_of_work(db) as uow:
        for fields in sessions:
            uow.sessions.add(Session(tenant_id=tenant, initial_prompt="Do it.", **fields))


# Two COMPLETED sessions and one FAILED with no retry left: work done, none to do.
HISTORY = [
    {"title": "done", "status": SessionStatus.COMPLETED},
    {"title": "done too", "status": SessionStatus.COMPLETED},
    {"title": "failed", "status": SessionStatus.FAILED, "retry_count": 3, "max_retries": 3},
]


def _resources(url: str, sensor: Any = None) -> dict[str, Any]:
    """The resources the daemon builds for `sensor`'s tick (the OpenCode one for the health
    sensor only)."""
    resources: dict[str, Any] = {
        "database": DatabaseResource(url=url),
        "supervision": SUPERVISION,
        "redis": RedisResource(url=None),
    }
    if sensor is agent_health_sensor:
        resources["opencode"] = OpenCodeResource()
    return resources


def _timed_tick(
    instance: dg.DagsterInstance, url: str, sensor: Any, cursor: str | None = None
) -> tuple[float, Any]:
    """One evaluation as the daemon runs it (the previous tick's cursor, fresh resources)."""
    started = time.perf_counter()
    with sensor_context(instance, _resources(url, sensor), cursor) as context:
        result = sensor.evaluate_tick(context)
    return time.perf_counter() - started, result


@contextmanager
def _old_database(url: str) -> Iterator[Database]:
    """What a tick's resource gives the sensor: a fresh engine, checked, disposed after."""
    resource = DatabaseResource(url=url)
    try:
        yield resource.get_database()
    finally:
        resource.dispose()


def _old_dispatch(url: str) -> None:
    """The dispatch tick before: every active tenant visited (two transactions each)."""
    with _old_database(url) as db:
        service = SessionService(db)
        with unit_of_work(db) as uow:
            tenants = uow.tenants.active_slugs()
        for tenant in tenants:
            tenant_waves(service, tenant, SUPERVISION)


def _old_retry(url: str) -> None:
    """The retry tick before: every active tenant's retries and decompositions looked at."""
    with _old_database(url) as db:
        service, coordination = SessionService(db), CoordinationService(db)
        with unit_of_work(db) as uow:
            tenants = uow.tenants.active_slugs()
        for tenant in tenants:
            service.retry_due(tenant)
            coordination.settle(tenant)


def _old_webhooks(url: str) -> None:
    """The webhook tick before: every active tenant's due deliveries looked for."""
    with _old_database(url) as db:
        webhooks = Webhooks(db)
        with unit_of_work(db) as uow:
            tenants = uow.tenants.active_slugs()
        for tenant in tenants:
            with tenant_scope(tenant):
                webhooks.deliver_due(Caller.operator(), tenant, PER_TENANT_PER_TICK)


def _old_health(url: str) -> None:
    """The agent-health tick before: every active tenant's agents and their load read (a
    tenant without agents has no server to probe)."""
    with _old_database(url) as db:
        with unit_of_work(db) as uow:
            tenants = uow.tenants.active_slugs()
        for tenant in tenants:
            with tenant_scope(tenant), unit_of_work(db) as uow:
                uow.agents.list(active_only=True)
                uow.sessions.active_by_agent()


def _timed(action: Callable[[], None], count: int) -> list[float]:
    durations = []
    for _ in range(count):
        started = time.perf_counter()
        action()
        durations.append(time.perf_counter() - started)
    return durations


def idle(kind: str, scratch: Path, args: argparse.Namespace) -> dict[str, Any]:
    with database(kind, scratch, "ticks_idle", args.postgres_url) as url:
        db = Database(url)
        try:
            for tenant in _tenants(db, args.tenants):
                _sessions(db, tenant, HISTORY)
        finally:
            db.dispose()
        result: dict[str, Any] = {"tenants": args.tenants}
        with dg.instance_for_test() as instance:
            sensors = (
                ("dispatch", dispatch_sensor),
                ("retry", retry_sensor),
                ("webhooks", webhook_delivery_sensor),
                ("health", agent_health_sensor),
            )
            for name, sensor in sensors:
                durations = []
                for _ in range(args.ticks):
                    seconds, outcome = _timed_tick(instance, url, sensor)
                    assert not getattr(outcome, "run_requests", None), "idle tenants had work"
                    durations.append(seconds)
                result[name] = _seconds_stats(durations)
        if args.old_ticks:
            result["dispatch_before"] = _seconds_stats(
                _timed(lambda: _old_dispatch(url), args.old_ticks)
            )
            result["retry_before"] = _seconds_stats(_timed(lambda: _old_retry(url), args.old_ticks))
            result["webhooks_before"] = _seconds_stats(
                _timed(lambda: _old_webhooks(url), args.old_ticks)
            )
            result["health_before"] = _seconds_stats(
                _timed(lambda: _old_health(url), args.old_ticks)
            )
        return result


def queued(kind: str, scratch: Path, args: argparse.Namespace) -> dict[str, Any]:
    per_tenant = max(1, args.sessions // args.tenants)
    with database(kind, scratch, "ticks_queued", args.postgres_url) as url:
        db = Database(url)
        try:
            for tenant in _tenants(db, args.tenants):
                _sessions(db, tenant, [{"title": f"queued {n}"} for n in range(per_tenant)])
        finally:
            db.dispose()
        durations: list[float] = []
        claimed = 0
        with dg.instance_for_test() as instance:
            retry_seconds, _ = _timed_tick(instance, url, retry_sensor)
            started = time.perf_counter()
            cursor = None
            while claimed < per_tenant * args.tenants and len(durations) < MAX_TICKS:
                seconds, outcome = _timed_tick(instance, url, dispatch_sensor, cursor)
                durations.append(seconds)
                cursor = outcome.cursor
                requests = getattr(outcome, "run_requests", None) or []
                got = sum(
                    len(r.run_config["ops"]["supervise_wave"]["config"]["session_ids"])
                    for r in requests
                )
                if not got and cursor is None:
                    break
                claimed += got
            elapsed = time.perf_counter() - started
        return {
            "tenants": args.tenants,
            "sessions": per_tenant * args.tenants,
            "claimed": claimed,
            "dispatched_in_s": round(elapsed, 2),
            "dispatch": _seconds_stats(durations),
            "retry_tick_with_all_queued_s": round(retry_seconds, 4),
        }


def _shown(value: Any) -> str:
    """An argument as recorded: a path inside the project relative to it (no machine paths)."""
    if isinstance(value, Path) and value.resolve().is_relative_to(Path.cwd()):
        return str(value.resolve().relative_to(Path.cwd()))
    return str(value)


def _table(document: dict[str, Any]) -> Table:
    table = Table(title="Sensor ticks (seconds per tick)")
    for column in ("database", "scenario", "sensor", "ticks", "p50", "p95", "max", "interval"):
        table.add_column(column)
    for kind, scenarios in document["databases"].items():
        for scenario, figures in scenarios.items():
            for sensor, interval in (
                ("dispatch", DISPATCH_INTERVAL),
                ("dispatch_before", DISPATCH_INTERVAL),
                ("retry", RETRY_INTERVAL),
                ("retry_before", RETRY_INTERVAL),
                ("webhooks", WEBHOOK_INTERVAL),
                ("webhooks_before", WEBHOOK_INTERVAL),
                ("health", HEALTH_INTERVAL),
                ("health_before", HEALTH_INTERVAL),
            ):
                stats = figures.get(sensor)
                if stats is None:
                    continue
                label = f"{scenario}: {figures['tenants']} tenants"
                if "sessions" in figures:
                    label += f", {figures['sessions']} sessions"
                table.add_row(
                    kind,
                    label,
                    sensor.replace("_before", " (before)"),
                    str(stats["ticks"]),
                    f"{stats['p50_s']:.3f}",
                    f"{stats['p95_s']:.3f}",
                    f"{stats['max_s']:.3f}",
                    f"{interval}",
                )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--ticks", type=int, default=10)
    parser.add_argument("--old-ticks", type=int, default=3)
    parser.add_argument("--skip-queued", action="store_true")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    document: dict[str, Any] = {
        "command": "python -m bench.sensor_ticks",
        "arguments": {k: _shown(v) for k, v in vars(args).items() if k != "postgres_url"},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "databases": {},
    }
    console = Console(width=120)
    with tempfile.TemporaryDirectory(prefix="indorch-ticks-") as scratch:
        for kind in args.databases.split(","):
            console.log(f"{kind}: idle")
            scenarios = {"idle": idle(kind, Path(scratch), args)}
            if not args.skip_queued:
                console.log(f"{kind}: queued")
                scenarios["queued"] = queued(kind, Path(scratch), args)
            document["databases"][kind] = scenarios
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=2) + "\n")
    console.print(_table(document))
    for kind, scenarios in document["databases"].items():
        if "queued" in scenarios:
            q = scenarios["queued"]
            console.print(
                f"{kind}: {q['claimed']} of {q['sessions']} claimed in {q['dispatched_in_s']} s "
                f"over {q['dispatch']['ticks']} ticks; retry tick with all queued "
                f"{q['retry_tick_with_all_queued_s']} s"
            )
    console.print(f"written {args.output}")


if __name__ == "__main__":
    main()
