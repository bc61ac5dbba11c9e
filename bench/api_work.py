"""The work one API submission costs, counted rather than timed: Python function calls (every
thread of the server side), worker-thread hops and SQL statements per `POST /api/v1/sessions`.

    .venv/bin/python -m bench.api_work [--databases sqlite,postgres] [--requests 200]
        [--redis-url redis://127.0.0.1:6379/6]
        [--postgres-url postgresql://postgres@127.0.0.1:5432/postgres]

On a shared, loaded machine times move with the neighbours' load; these counts do not, so they
compare two versions of the code at any load. The app runs in this process (no uvicorn: its own
cost is the same for every version) on a new migrated database, requests sent one at a time
through the ASGI interface after a warm-up. Calls made by the load generator's HTTP client are
left out. Results: a table on stdout and `bench/results/api_work.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import anyio.to_thread
import httpx
from sqlalchemy import event

from bench.api import TENANT, _tenant_key
from bench.world import database

RESULTS = Path(__file__).parent / "results" / "api_work.json"
WARMUP = 50
_CLIENT_CODE = ("/httpx/", "/httpcore/", "/h11/")


class CallCounter:
    """Counts Python function calls in every thread while `counting`, the client's excepted."""

    def __init__(self) -> None:
        self.counting = False
        self.calls = 0

    def __call__(self, frame: FrameType, event_name: str, _arg: Any) -> None:
        filename = frame.f_code.co_filename
        if event_name == "call" and self.counting and not any(p in filename for p in _CLIENT_CODE):
            self.calls += 1


def _count(url: str, requests: int, redis_url: str | None) -> dict[str, Any]:
    key = _tenant_key(url)
    os.environ.update(DATABASE_URL=url, INDORCH_API_RATE_LIMIT="100000000")
    os.environ.pop("REDIS_URL", None)
    if redis_url:
        os.environ["REDIS_URL"] = redis_url
    from api.app import create_app

    counter = CallCounter()
    threading.setprofile(counter)  # the worker threads, started later, are counted too
    sys.setprofile(counter)
    app = create_app()
    statements: list[str] = []
    hops: list[int] = []
    run_sync = anyio.to_thread.run_sync

    async def counted_run_sync(*args: Any, **kwargs: Any) -> Any:
        hops.append(1)
        return await run_sync(*args, **kwargs)

    async def load() -> None:
        async with app.router.lifespan_context(app):
            engine = app.state.services.database.engine
            event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
            transport = httpx.ASGITransport(app=app)
            headers = {"Authorization": f"Bearer {key}", "X-Tenant-ID": TENANT}
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:

                async def submit(number: int) -> None:
                    answer = await client.post(
                        "/api/v1/sessions",
                        json={"prompt": f"Bench request {number}: fix the parser.", "tags": ["b"]},
                        headers={**headers, "Idempotency-Key": f"bench-{number}"},
                    )
                    if answer.status_code != 201:
                        raise SystemExit(f"answered {answer.status_code}: {answer.text}")

                for number in range(WARMUP):
                    await submit(number)
                statements.clear()
                anyio.to_thread.run_sync = counted_run_sync
                counter.counting = True
                try:
                    for number in range(WARMUP, WARMUP + requests):
                        await submit(number)
                finally:
                    counter.counting = False
                    anyio.to_thread.run_sync = run_sync

    try:
        asyncio.run(load())
    finally:
        sys.setprofile(None)
        threading.setprofile(None)  # type: ignore[arg-type]
    return {
        "requests": requests,
        "python_calls_per_request": round(counter.calls / requests),
        "thread_hops_per_request": round(len(hops) / requests, 2),
        "sql_statements_per_request": round(len(statements) / requests, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--redis-url", default=None)
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-api-work-") as scratch:
        for kind in args.databases.split(","):
            with database(kind.strip(), Path(scratch), "api-work", args.postgres_url) as url:
                results.append(
                    {"database": kind.strip(), **_count(url, args.requests, args.redis_url)}
                )
    print(f"{'database':<10} {'Python calls':>12} {'thread hops':>11} {'SQL statements':>14}")
    for r in results:
        print(
            f"{r['database']:<10} {r['python_calls_per_request']:>12} "
            f"{r['thread_hops_per_request']:>11} {r['sql_statements_per_request']:>14}"
        )
    document = {
        "bench": "api_work",
        "command": "python -m bench.api_work " + " ".join(sys.argv[1:]),
        "arguments": {
            k: str(v) for k, v in vars(args).items() if k not in ("output", "postgres_url")
        },
        "results": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
