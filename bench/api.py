"""Session submissions per second through the HTTP API, and their latency, on loopback.

    .venv/bin/python -m bench.api [--databases sqlite,postgres] [--requests 3000]
        [--concurrency 16] [--workers 1] [--redis-url redis://127.0.0.1:6379/6]
        [--postgres-url postgresql://postgres@127.0.0.1:5432/postgres]

Per database: a new migrated database with one tenant and a MEMBER key; `indorch api serve`
(uvicorn, a real process) on it; then this process, the load generator, keeps `--concurrency`
requests in flight over keep-alive connections (httpx), each a `POST /api/v1/sessions` with its
own prompt and Idempotency-Key, the first `--warmup` of them unmeasured. Every answer must be 201.
The rate limit stays on (counted in Redis when `--redis-url` is given) but far above the load.
Latency is the client's: request sent to answer read. Beside it, the server's CPU time per
request (its process tree, from /proc): on a loaded machine, what the work itself allows. First,
the floor in the same run: as many `GET /health/live` (no work, no database) through the same
server, client and concurrency: what HTTP and the load generator allow here.
Results: a table on stdout and `bench/results/api.json` (targets: >= 300 submissions/s, p95 <=
50 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from bench.analysis import percentile
from bench.procstat import all_processes, descendants
from bench.world import database
from domain.caller import Caller
from domain.tenant import Role, Tenant
from resources.database import Database
from services.factory import ServiceFactory

RESULTS = Path(__file__).parent / "results" / "api.json"
ROOT = Path(__file__).resolve().parents[1]
TENANT = "bench-api"
TARGET_PER_SECOND = 300.0
TARGET_P95_MS = 50.0
START_TIMEOUT_SECONDS = 60.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _tenant_key(url: str) -> str:
    db = Database(url)
    try:
        factory = ServiceFactory(db)
        operator = Caller.operator()
        factory.tenants().create(operator, Tenant(slug=TENANT, name="API bench"))
        _, plaintext = factory.api_keys().create(operator, TENANT, "bench", role=Role.MEMBER)
        return plaintext
    finally:
        db.dispose()


def _serve(url: str, port: int, workers: int, redis_url: str | None, log: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "INDORCH_API_RATE_LIMIT": "100000000",
        "INDORCH_API_RATE_WINDOW_SECONDS": "60",
    }
    env.pop("REDIS_URL", None)
    if redis_url:
        env["REDIS_URL"] = redis_url
    command = [str(ROOT / ".venv" / "bin" / "indorch"), "api", "serve", "--port", str(port)]
    command += ["--workers", str(workers)]
    with log.open("w") as output:
        return subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)


def _tree_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of the server process and its workers so far, each counted
    once (`descendants` lists the root too: it was counted twice until December 2026, which
    doubled the figure of a one-worker server)."""
    return sum(p.cpu_seconds for p in descendants(pid, all_processes()))


def _wait_ready(base: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the API server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{base}/health/live", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the API server did not answer in {START_TIMEOUT_SECONDS:.0f} s")


Request = Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]


def _submission(key: str) -> Request:
    headers = {"Authorization": f"Bearer {key}", "X-Tenant-ID": TENANT}

    def submit(client: httpx.AsyncClient, number: int) -> Awaitable[httpx.Response]:
        body = {"prompt": f"Bench request {number}: fix the parser.", "tags": ["bench"]}
        return client.post(
            "/api/v1/sessions",
            json=body,
            headers={**headers, "Idempotency-Key": f"bench-{number}"},
        )

    return submit


def _liveness(client: httpx.AsyncClient, _number: int) -> Awaitable[httpx.Response]:
    """The floor: the same server, client and concurrency, an answer that does no work."""
    return client.get("/health/live")


async def _load(
    base: str, request: Request, total: int, warmup: int, concurrency: int
) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    counter = iter(range(warmup + total))
    started_at = 0.0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:

        async def one(number: int) -> None:
            sent = time.perf_counter()
            answer = await request(client, number)
            took = time.perf_counter() - sent
            if number >= warmup:
                latencies.append(took)
                statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1

        async def worker() -> None:
            nonlocal started_at
            for number in counter:
                if number == warmup:
                    started_at = time.perf_counter()
                await one(number)

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        ended = time.perf_counter()
    wall = ended - (started_at or began)
    return {
        "requests": total,
        "statuses": {str(code): count for code, count in sorted(statuses.items())},
        "wall_seconds": round(wall, 3),
        "per_second": round(total / wall, 1),
        "latency_ms": {
            name: round(1000 * (percentile(latencies, q) or 0.0), 2)
            for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
        },
    }


def run_one(kind: str, args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    with database(kind, scratch, "api", args.postgres_url) as url:
        key = _tenant_key(url)
        port = _free_port()
        log = scratch / f"api-{kind}.log"
        server = _serve(url, port, args.workers, args.redis_url, log)
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(base, server, log)
            floor = asyncio.run(
                _load(base, _liveness, args.requests, args.warmup, args.concurrency)
            )
            server_cpu, client_cpu = _tree_cpu_seconds(server.pid), time.process_time()
            measured = asyncio.run(
                _load(base, _submission(key), args.requests, args.warmup, args.concurrency)
            )
            sent = args.requests + args.warmup
            measured["server_cpu_ms_per_request"] = round(
                1000 * (_tree_cpu_seconds(server.pid) - server_cpu) / sent, 2
            )
            measured["client_cpu_ms_per_request"] = round(
                1000 * (time.process_time() - client_cpu) / sent, 2
            )
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
    ok = measured["statuses"] == {"201": args.requests}
    return {
        "database": kind,
        **measured,
        "floor": {k: floor[k] for k in ("statuses", "per_second", "latency_ms")},
        "all_created": ok,
        "target_met": ok
        and measured["per_second"] >= TARGET_PER_SECOND
        and measured["latency_ms"]["p95"] <= TARGET_P95_MS,
    }


def _table(results: list[dict[str, Any]]) -> str:
    lines = [
        f"{'database':<10} {'requests':>8} {'per s':>8} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'p99 ms':>8} {'srv CPU ms':>10} {'floor /s':>9}  statuses  "
        f"target (>= {TARGET_PER_SECOND:.0f}/s, p95 <= {TARGET_P95_MS:.0f} ms)"
    ]
    for r in results:
        ms = r["latency_ms"]
        lines.append(
            f"{r['database']:<10} {r['requests']:>8} {r['per_second']:>8.1f} {ms['p50']:>8.2f} "
            f"{ms['p95']:>8.2f} {ms['p99']:>8.2f} {r['server_cpu_ms_per_request']:>10.2f} "
            f"{r['floor']['per_second']:>9.1f}  "
            f"{json.dumps(r['statuses'])}  "
            f"{'met' if r['target_met'] else 'NOT met'}"
        )
    return "\n".join(lines)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.api", description=__doc__)
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--redis-url", default=None)
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--output", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def run(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """Each database in turn; the results document (also for `bench`)."""
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-api-") as scratch:
        for kind in args.databases.split(","):
            results.append(run_one(kind.strip(), args, Path(scratch)))
            print(_table(results[-1:]), file=sys.stderr)
    return {
        "bench": "api",
        "command": command,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        },
        "arguments": {
            k: str(v) for k, v in vars(args).items() if k not in ("output", "postgres_url")
        },
        "targets": {"per_second": TARGET_PER_SECOND, "p95_ms": TARGET_P95_MS},
        "results": results,
    }


def main() -> None:
    args = parse()
    document = run(args, "python -m bench.api " + " ".join(sys.argv[1:]))
    print(_table(document["results"]))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
