"""A wave's look for work: what each costs the run worker's CPU when there is nothing to take.

    .venv/bin/python -m bench.wave_looks [--looks 2000] [--databases sqlite,postgres]
        [--running 40] [--ended 100]

A wave with room looks for its tenant's unsupervised sessions, then its due ones
(`services.top_up.claim_next_for`) every second and after every session it finishes; in a burst
most looks find nothing. Two cases on a fresh migrated database (`bench.world.database`;
PostgreSQL as the application role, under row-level security), the tenant holding `--running`
sessions leased to live waves and `--ended` finished ones:

1. **nothing due** -- no PENDING session;
2. **quota full** -- PENDING sessions due, but the tenant's concurrency limit reached by the
   running ones (the look must not take the tenant's lock to find that out).

Per case: CPU seconds of this process per look (`time.process_time`, the database server's
own work on PostgreSQL not counted) and wall time per look. Compare versions by running the
same command from each (a git worktree on `PYTHONPATH`), back to back.
Results: a table on stdout and `bench/results/wave_looks.json`.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench import machine
from bench.world import database
from domain.clock import utcnow
from domain.session import Session, SessionStatus
from domain.tenant import Tenant
from resources.database import Database, tenant_scope, unit_of_work
from services.session_service import SessionService
from services.top_up import claim_next_for

RESULTS = Path(__file__).parent / "results" / "wave_looks.json"
TENANT = "bench-looks"
WARM_UP_LOOKS = 50
ROOM = 10


def _world(url: str, running: int, ended: int, pending: int) -> None:
    db = Database(url)
    later = utcnow() + timedelta(hours=1)
    try:
        with unit_of_work(db) as uow:
            # the limit is the running sessions: pending ones are due but find no slot
            uow.tenants.add(Tenant(slug=TENANT, name=TENANT, max_concurrent_sessions=running))
        with tenant_scope(TENANT), unit_of_work(db) as uow:
            rows = [(SessionStatus.RUNNING, "wave-live", later)] * running
            rows += [(SessionStatus.COMPLETED, None, None)] * ended
            rows += [(SessionStatus.PENDING, None, None)] * pending
            for number, (status, owner, until) in enumerate(rows):
                session = Session(
                    tenant_id=TENANT, title=f"s{number}", initial_prompt="Do it.", status=status
                )
                uow.sessions.add(
                    session.model_copy(update={"lease_owner": owner, "lease_expires_at": until})
                )
    finally:
        db.dispose()


def _measure(url: str, looks: int) -> dict[str, Any]:
    db = Database(url)
    try:
        look = claim_next_for(SessionService(db), TENANT, "wave-bench", timedelta(seconds=60))
        with tenant_scope(TENANT):
            for _ in range(WARM_UP_LOOKS):
                assert look(ROOM, 3600.0) == [], "a look took work: the case is wrong"
            cpu, wall = time.process_time(), time.perf_counter()
            for _ in range(looks):
                look(ROOM, 3600.0)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    finally:
        db.dispose()
    return {
        "looks": looks,
        "cpu_ms_per_look": round(cpu / looks * 1000, 3),
        "wall_ms_per_look": round(wall / looks * 1000, 3),
    }


def _table(document: dict[str, Any]) -> Table:
    table = Table(title="A wave's look that finds nothing to take")
    for column in ("database", "case", "looks", "CPU ms / look", "wall ms / look"):
        table.add_column(column)
    for kind, cases in document["databases"].items():
        for case, figures in cases.items():
            table.add_row(
                kind,
                case,
                str(figures["looks"]),
                f"{figures['cpu_ms_per_look']:.3f}",
                f"{figures['wall_ms_per_look']:.3f}",
            )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--looks", type=int, default=2000)
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--running", type=int, default=40)
    parser.add_argument("--ended", type=int, default=100)
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    document: dict[str, Any] = {
        "command": "python -m bench.wave_looks",
        "arguments": {
            "looks": args.looks,
            "databases": args.databases,
            "running": args.running,
            "ended": args.ended,
        },
        "machine": machine.facts(),
        "databases": {},
    }
    console = Console(width=120)
    cases = {"nothing due": 0, "quota full": 5}
    with tempfile.TemporaryDirectory(prefix="indorch-looks-") as scratch:
        for kind in args.databases.split(","):
            document["databases"][kind] = {}
            for case, pending in cases.items():
                console.log(f"{kind}: {case}")
                name = f"looks_{case.replace(' ', '_')}"
                with database(kind, Path(scratch), name, args.postgres_url) as url:
                    _world(url, args.running, args.ended, pending)
                    document["databases"][kind][case] = _measure(url, args.looks)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=2) + "\n")
    console.print(_table(document))
    console.print(f"written {args.output}")


if __name__ == "__main__":
    main()
