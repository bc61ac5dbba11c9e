"""Database growth per 1,000 sessions, before and after the history retention.

    .venv/bin/python -m bench.retention [--sessions 1000] [--tenants 3] [--steps 4]
        [--databases sqlite,postgres] [--postgres-url postgresql://postgres@127.0.0.1:5432/postgres]

For each database: a fresh migrated one (`bench.world.database`; PostgreSQL through the
application role, under row-level security), `--tenants` tenants, then `--sessions` finished
sessions written through the repositories as a wave records them, dated 120 days ago: created,
QUEUED, RUNNING, `agent.prompted`, per agent step (`--steps`) an `agent.tool` call, an
`agent.step` event and a checkpoint with the step's text (1,500 characters) and files, then the
end (8 in 10 COMPLETED with a result, 1 STOPPED, 1 FAILED out of retries). Sizes: the tables that
grow with sessions (`sessions`, `session_events`, `checkpoints`), measured after seeding (the
growth without retention) and after `HistoryRetention.prune` at 90 days and a VACUUM (the growth
that stays: SQLite `VACUUM`; PostgreSQL `VACUUM FULL` for the measurement, where in production
autovacuum makes the space reusable). Results: a table on stdout and `bench/results/retention.json`.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from bench.world import database as fresh_database
from domain.caller import Caller
from domain.checkpoint import step_checkpoint_data
from domain.clock import utcnow
from domain.history_retention import expiry_cutoff
from domain.session import Session, SessionStatus
from domain.tenant import Tenant
from resources.database import Database, tenant_scope, unit_of_work
from services.history_retention import HistoryRetention

RESULTS = Path(__file__).parent / "results" / "retention.json"
GROWING_TABLES = ("sessions", "session_events", "checkpoints")
STEP_TEXT = ("The change is made: the function now checks its input and the test covers it. " * 20)[
    :1500
]
RETENTION_DAYS = 90
AGE_DAYS = 120


def _seed(url: str, tenants: list[str], sessions: int, steps: int) -> None:
    db = Database(url)
    at = utcnow() - timedelta(days=AGE_DAYS)
    try:
        with unit_of_work(db) as uow:
            for slug in tenants:
                uow.tenants.add(Tenant(slug=slug, name=f"Bench {slug}"))
        per_tenant = sessions // len(tenants)
        for index, slug in enumerate(tenants):
            count = per_tenant + (1 if index < sessions % len(tenants) else 0)
            for start in range(0, count, 100):
                with tenant_scope(slug), unit_of_work(db) as uow:
                    for number in range(start, min(count, start + 100)):
                        _one_session(uow, slug, number, steps, at)
    finally:
        db.dispose()


def _one_session(uow: Any, tenant: str, number: int, steps: int, at: Any) -> None:
    ending = number % 10
    session = Session(
        tenant_id=tenant,
        title=f"Session {number}",
        initial_prompt=f"Change module {number} so that it validates its input, and test it.",
        created_at=at,
        max_retries=0 if ending == 9 else 3,
    )
    uow.sessions.add(session)
    uow.sessions.save_transition(session, session.transition_to(SessionStatus.QUEUED, at=at))
    uow.sessions.append_event(session.id, "agent.prompted", {"agent_session_id": "ses_x"}, at=at)
    uow.sessions.save_transition(session, session.transition_to(SessionStatus.RUNNING, at=at))
    files = []
    for step in range(steps):
        files.append(f"src/module_{number}_{step}.py")
        uow.sessions.append_event(
            session.id, "agent.tool", {"tool": "write", "status": "completed"}, at=at
        )
        data = step_checkpoint_data(
            attempt=0,
            message_id=f"msg_{number}_{step}",
            text=STEP_TEXT,
            files_changed=files,
            tokens_in=1200 * (step + 1),
            tokens_out=300 * (step + 1),
        )
        uow.sessions.append_event(session.id, "agent.step", data, at=at)
        uow.sessions.add_next_checkpoint(session.id, data, at)
    if ending == 9:
        end = SessionStatus.FAILED
    elif ending == 8:
        end = SessionStatus.STOPPED
    else:
        end = SessionStatus.COMPLETED
        session.result = {"text": STEP_TEXT[:400], "files": [{"file": f} for f in files]}
    uow.sessions.save_transition(session, session.transition_to(end, at=at))


def _sizes(url: str) -> dict[str, Any]:
    """Rows and bytes of the growing tables, after a VACUUM (as the server's own user)."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            rows = {
                table: connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
                for table in GROWING_TABLES
            }
            if engine.dialect.name == "sqlite":
                connection.execute(text("VACUUM"))
                page = connection.execute(text("PRAGMA page_size")).scalar_one()
                pages = connection.execute(text("PRAGMA page_count")).scalar_one()
                try:
                    per_table = {
                        table: connection.execute(
                            text("SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name = :t"),
                            {"t": table},
                        ).scalar_one()
                        for table in GROWING_TABLES
                    }
                except Exception:  # dbstat not compiled in: the whole file only
                    per_table = {}
                return {"rows": rows, "bytes": per_table, "database_bytes": page * pages}
            for table in GROWING_TABLES:
                connection.execute(text(f"VACUUM FULL {table}"))
            per_table = {
                table: connection.execute(
                    text("SELECT pg_total_relation_size(:t)"), {"t": table}
                ).scalar_one()
                for table in GROWING_TABLES
            }
            total = connection.execute(
                text("SELECT pg_database_size(current_database())")
            ).scalar_one()
            return {"rows": rows, "bytes": per_table, "database_bytes": total}
    finally:
        engine.dispose()


def _measure(kind: str, args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    with fresh_database(kind, scratch, f"retention-{kind}", args.postgres_url) as url:
        empty = _sizes(url)
        tenants = [f"bench-{n}" for n in range(args.tenants)]
        started = time.perf_counter()
        _seed(url, tenants, args.sessions, args.steps)
        seeded_seconds = time.perf_counter() - started
        before = _sizes(url)
        db = Database(url)
        try:
            started = time.perf_counter()
            report = HistoryRetention(db).prune(
                Caller.operator(), expiry_cutoff(RETENTION_DAYS, utcnow())
            )
            prune_seconds = time.perf_counter() - started
        finally:
            db.dispose()
        after = _sizes(url)
    per_thousand = 1000 / args.sessions

    def growth(sizes: dict[str, Any]) -> dict[str, Any]:
        tables = {
            table: round((sizes["bytes"][table] - empty["bytes"].get(table, 0)) * per_thousand)
            for table in sizes["bytes"]
        }
        return {
            "tables_bytes": tables,
            "growing_tables_bytes": sum(tables.values()) if tables else None,
            "database_bytes": round(
                (sizes["database_bytes"] - empty["database_bytes"]) * per_thousand
            ),
            "rows": {table: round(n * per_thousand) for table, n in sizes["rows"].items()},
        }

    return {
        "database": kind,
        "sessions": args.sessions,
        "seed_seconds": round(seeded_seconds, 1),
        "prune_seconds": round(prune_seconds, 2),
        "removed": {"session_events": report.session_events, "checkpoints": report.checkpoints},
        "per_1000_sessions_before": growth(before),
        "per_1000_sessions_after": growth(after),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--tenants", type=int, default=3)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        for kind in args.databases.split(","):
            results.append(_measure(kind.strip(), args, Path(scratch)))
    print(
        f"{'database':<10} {'MB / 1,000 sessions before':>27} {'after':>8} {'events before':>14} "
        f"{'after':>7} {'prune s':>8}"
    )
    for result in results:
        before, after = result["per_1000_sessions_before"], result["per_1000_sessions_after"]
        key = "growing_tables_bytes" if before["growing_tables_bytes"] else "database_bytes"
        print(
            f"{result['database']:<10} {before[key] / 1e6:>27.2f} {after[key] / 1e6:>8.2f} "
            f"{before['rows']['session_events']:>14} {after['rows']['session_events']:>7} "
            f"{result['prune_seconds']:>8}"
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {
                "command": "python -m bench.retention "
                + " ".join(
                    f"--{k.replace('_', '-')} {v}"
                    for k, v in vars(args).items()
                    if k not in ("output", "postgres_url")
                ),
                "machine": {"platform": platform.platform(), "python": platform.python_version()},
                "retention_days": RETENTION_DAYS,
                "results": results,
            },
            indent=2,
        )
    )
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
