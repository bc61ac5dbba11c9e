"""Live events fan-out: SSE readers of one stream, end-to-end latency, memory per reader.

    .venv/bin/python -m bench.api_events [--readers 1000] [--events 40] [--rate 5]
        [--client-processes 4] [--database sqlite|postgres]
        [--redis-url redis://127.0.0.1:6379/8] [--postgres-url postgresql://...]

A real `indorch api serve` process on a fresh migrated database and Redis; `--readers` SSE
clients (raw sockets, spread over `--client-processes` processes so that the clients' parsing
does not starve the server) follow one session's stream. Once every reader
has the session's first event, `--events` events are recorded at `--rate` per second the way a
wave records them (`EventBatch` written in one transaction, then published to Redis), each
carrying the wall-clock time it was recorded at; every reader notes when it parsed each one.

- **latency**: parse time minus record time (same machine clock), over every reader x event:
  p50 / p95 / p99 / max (target p95 <= 250 ms at 1,000 readers);
- **completeness**: every reader must receive every event exactly once, in seq order;
- **memory per reader**: the server's RSS with all readers connected minus its RSS with
  `WARM_READERS` connected, divided by the difference in readers;
- **server CPU**: the server's CPU seconds while the events were delivered.

Results: a table on stdout and `bench/results/api_events.json` (for other readers or rates:
`api_events-<readers>-at-<rate>.json`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from bench.world import database
from domain.caller import Caller
from domain.tenant import Role, Tenant
from resources.database import Database, tenant_scope
from resources.redis.live_events import RedisEventPublisher
from resources.runtime_host.processes import resident_kb
from services.event_batch import EventBatch
from services.factory import ServiceFactory
from services.session_service import SubmitSession

RESULTS = Path(__file__).parent / "results" / "api_events.json"
OPERATOR = Caller.operator()
WARM_READERS = 10
CONNECT_TIMEOUT_SECONDS = 120.0
DELIVERY_TIMEOUT_SECONDS = 60.0
SETTLE_SECONDS = 2.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SENT_AT = b'"sent_at":'


# -- the readers (in client processes) ---------------------------------------------------------


async def _read_stream(
    port: int, path: str, headers: dict[str, str], until_seq: int, got: list[tuple[int, float]]
) -> str:
    """One SSE client on a raw socket (HTTP/1.1, chunked); notes (seq, latency) per event."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Accept: text/event-stream"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    await writer.drain()
    status = (await reader.readline()).decode()
    if " 200 " not in status:
        writer.close()
        return f"status {status.strip()}"
    chunked = False
    while (line := await reader.readline()) not in (b"\r\n", b""):
        if line.lower().startswith(b"transfer-encoding:") and b"chunked" in line.lower():
            chunked = True
    buffer = b""
    try:
        while True:
            if chunked:
                size = int((await reader.readline()).strip(), 16)
                if size == 0:
                    return "closed"
                data = (await reader.readexactly(size + 2))[:-2]
            else:
                data = await reader.read(65536)
                if not data:
                    return "closed"
            buffer += data
            while b"\n\n" in buffer:
                message, buffer = buffer.split(b"\n\n", 1)
                if not message.startswith(b"id: "):
                    continue  # a comment (stream open, keepalive)
                # Light parsing, so the readers' CPU leaves the server its share: the seq is the
                # id, the record time the event's `sent_at` (JSON numbers, no nesting).
                seq = int(message[4 : message.index(b"\n")])
                at = message.find(SENT_AT)
                if at >= 0:
                    end = at + len(SENT_AT)
                    stop = min(
                        i for i in (message.find(b",", end), message.find(b"}", end)) if i > 0
                    )
                    latency = time.time() - float(message[end:stop])
                else:
                    latency = 0.0
                got.append((seq, latency))
                if seq >= until_seq:
                    return "done"
    finally:
        writer.close()


def _client_process(
    port: int,
    path: str,
    headers: dict[str, str],
    readers: int,
    until_seq: int,
    first_seq: int,
    report: Any,
) -> None:
    async def main() -> None:
        received: list[list[tuple[int, float]]] = [[] for _ in range(readers)]
        tasks = []
        for index in range(readers):
            tasks.append(
                asyncio.create_task(_read_stream(port, path, headers, until_seq, received[index]))
            )
            if index % 50 == 49:
                await asyncio.sleep(0.05)  # connect in waves, as clients arrive
        connected_reported = -1
        while True:
            connected = sum(1 for got in received if any(seq >= first_seq for seq, _ in got))
            if connected != connected_reported:
                report.put(("connected", os.getpid(), connected))
                connected_reported = connected
            if all(task.done() for task in tasks):
                break
            await asyncio.sleep(0.2)
        outcomes = [
            task.result() if not task.exception() else repr(task.exception()) for task in tasks
        ]
        report.put(("done", os.getpid(), received, outcomes))

    asyncio.run(main())


# -- the server ----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _serve(url: str, redis_url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    indorch = Path(sys.executable).with_name("indorch")
    # The tenant's rate limit (600 requests a minute by default) would refuse readers past the
    # 600th: every reader is one request of the one tenant.
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "REDIS_URL": redis_url,
        "INDORCH_API_RATE_LIMIT": "100000000",
    }
    env.pop("DAGSTER_HOME", None)
    process = subprocess.Popen(
        [str(indorch), "api", "serve", "--port", str(port)],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"indorch api serve did not start: {log.read_text()[-2000:]}")
        time.sleep(0.2)


# -- the run -------------------------------------------------------------------------------------


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def run(arguments: argparse.Namespace) -> dict[str, Any]:
    scratch = Path(tempfile.mkdtemp(prefix="bench-api-events-"))
    with database(arguments.database, scratch, "api_events", arguments.postgres_url) as url:
        db = Database(url)
        factory = ServiceFactory(db)
        slug = "bench-events"
        factory.tenants().create(OPERATOR, Tenant(slug=slug, name="Bench events"))
        _, key = factory.api_keys().create(OPERATOR, slug, "reader", role=Role.VIEWER)
        session = factory.sessions().submit(
            Caller.operator(), slug, SubmitSession(title="watched", prompt="p")
        )
        publisher = RedisEventPublisher(arguments.redis_url)
        port = _free_port()
        server = _serve(url, arguments.redis_url, port, scratch / "server.log")
        try:
            return _measure(arguments, db, publisher, server, port, slug, key, session.id)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
            publisher.close()
            db.dispose()


def _measure(
    arguments: argparse.Namespace,
    db: Database,
    publisher: RedisEventPublisher,
    server: subprocess.Popen[bytes],
    port: int,
    slug: str,
    key: str,
    session_id: str,
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}", "X-Tenant-ID": slug}
    path, first_seq = f"/api/v1/sessions/{session_id}/events", 1
    until_seq = 1 + arguments.events
    context = mp.get_context("spawn")
    report = context.Queue()

    def record(n: int) -> None:
        batch = EventBatch()
        batch.add(session_id, "agent.tool", {"n": n, "tool": "write", "sent_at": time.time()})
        with tenant_scope(slug):
            written = batch.flush(db)
        for event in written:
            publisher.publish(event)

    connected: dict[int, int] = {}

    def wait_connected(total: int, processes: list[Any]) -> None:
        deadline = time.monotonic() + CONNECT_TIMEOUT_SECONDS
        while sum(connected.values()) < total:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {sum(connected.values())} of {total} readers connected")
            try:
                kind, pid, *rest = report.get(timeout=1)
            except Exception:
                continue
            if kind == "connected":
                connected[pid] = rest[0]
            elif kind == "done":
                raise RuntimeError(f"a client process ended early: {rest[1][:5]}")

    def start_clients(count: int, processes: int) -> list[Any]:
        started = []
        shares = [
            count // processes + (1 if i < count % processes else 0) for i in range(processes)
        ]
        for share in shares:
            if share:
                process = context.Process(
                    target=_client_process,
                    args=(port, path, headers, share, until_seq, first_seq, report),
                )
                process.start()
                started.append(process)
        return started

    warm = start_clients(WARM_READERS, 1)
    wait_connected(WARM_READERS, warm)
    time.sleep(SETTLE_SECONDS)
    rss_warm_kb = resident_kb(server.pid)
    rest = arguments.readers - WARM_READERS
    clients = start_clients(rest, arguments.client_processes)
    connect_started = time.monotonic()
    wait_connected(arguments.readers, warm + clients)
    connect_seconds = time.monotonic() - connect_started
    time.sleep(SETTLE_SECONDS)
    rss_all_kb = resident_kb(server.pid)

    cpu_before = _cpu_seconds(server.pid)
    interval = 1.0 / arguments.rate
    started = time.monotonic()
    for n in range(1, arguments.events + 1):
        record(n)
        time.sleep(max(0.0, started + n * interval - time.monotonic()))
    received: list[list[tuple[int, float]]] = []
    outcomes: list[str] = []
    deadline = time.monotonic() + DELIVERY_TIMEOUT_SECONDS
    done = 0
    while done < len(warm + clients):
        if time.monotonic() > deadline:
            raise RuntimeError("the readers did not receive every event in time")
        try:
            kind, _pid, *rest_of = report.get(timeout=1)
        except Exception:
            continue
        if kind == "done":
            received.extend(rest_of[0])
            outcomes.extend(rest_of[1])
            done += 1
    cpu_seconds = _cpu_seconds(server.pid) - cpu_before
    for process in warm + clients:
        process.join(timeout=10)

    expected = list(range(1, until_seq + 1))
    complete = sum(1 for got in received if [seq for seq, _ in got] == expected)
    latencies = [latency for got in received for seq, latency in got if seq > first_seq]
    per_reader_kb = (rss_all_kb - rss_warm_kb) / max(arguments.readers - WARM_READERS, 1)
    # Per event, its first reader's latency (recording, Redis, the hub: the pipeline) and the
    # spread to its last reader (the fan-out, and the wait for a CPU on a shared machine).
    by_seq: dict[int, list[float]] = {}
    for got in received:
        for seq, latency in got:
            if seq > first_seq:
                by_seq.setdefault(seq, []).append(latency)
    firsts = [min(values) for values in by_seq.values()]
    spreads = [max(values) - min(values) for values in by_seq.values()]
    return {
        "stream": "session",
        "readers": arguments.readers,
        "events": arguments.events,
        "rate_per_second": arguments.rate,
        "deliveries": len(latencies),
        "readers_complete_in_order": complete,
        "reader_outcomes": {o: outcomes.count(o) for o in set(outcomes)},
        "latency_ms": {
            "p50": round(statistics.median(latencies) * 1000, 1),
            "p95": round(_percentile(latencies, 0.95) * 1000, 1),
            "p99": round(_percentile(latencies, 0.99) * 1000, 1),
            "max": round(max(latencies) * 1000, 1),
        },
        "first_reader_latency_ms": {
            "p50": round(statistics.median(firsts) * 1000, 1),
            "max": round(max(firsts) * 1000, 1),
        },
        "fan_out_spread_ms": {
            "p50": round(statistics.median(spreads) * 1000, 1),
            "max": round(max(spreads) * 1000, 1),
        },
        "connect_seconds": round(connect_seconds, 1),
        "server_rss_mb": {"warm": round(rss_warm_kb / 1024, 1), "all": round(rss_all_kb / 1024, 1)},
        "memory_per_reader_kb": round(per_reader_kb, 1),
        "server_cpu_seconds": round(cpu_seconds, 2),
        "server_cpu_ms_per_delivery": round(cpu_seconds * 1000 / max(len(latencies), 1), 3),
    }


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.api_events", description=__doc__)
    parser.add_argument("--readers", type=int, default=1000)
    parser.add_argument("--events", type=int, default=40)
    parser.add_argument("--rate", type=float, default=5.0, help="events per second")
    parser.add_argument("--client-processes", type=int, default=4)
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--redis-url", default=os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/8")
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    return parser.parse_args(argv)


def main() -> None:
    arguments = parse()
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    figures = run(arguments)
    figures["seconds"] = round(time.monotonic() - started, 1)
    # The machine's 1-minute load average before and after: on shared cores the latency is
    # mostly waiting for a CPU, which the server's CPU per delivery does not include.
    figures["load_average"] = {
        "before": round(load_before, 1),
        "after": round(os.getloadavg()[0], 1),
    }
    table = Table(
        title=f"SSE fan-out: {figures['readers']} readers of one {figures['stream']} stream"
    )
    for column in (
        "readers",
        "events",
        "deliveries (complete, in order)",
        "latency p50 / p95 / p99 / max ms",
        "MB RSS warm -> all",
        "KB / reader",
        "server CPU ms / delivery",
    ):
        table.add_column(column)
    latency = figures["latency_ms"]
    table.add_row(
        str(figures["readers"]),
        f"{figures['events']} at {figures['rate_per_second']:g}/s",
        f"{figures['deliveries']} ({figures['readers_complete_in_order']} readers)",
        f"{latency['p50']} / {latency['p95']} / {latency['p99']} / {latency['max']}",
        f"{figures['server_rss_mb']['warm']} -> {figures['server_rss_mb']['all']}",
        str(figures["memory_per_reader_kb"]),
        str(figures["server_cpu_ms_per_delivery"]),
    )
    Console().print(table)
    default = arguments.readers == 1000 and arguments.rate == 5.0
    stem = f"api_events-{arguments.readers}-at-{arguments.rate:g}"
    results = RESULTS if default else RESULTS.with_stem(stem)
    results.parent.mkdir(exist_ok=True)
    results.write_text(
        json.dumps(
            {
                "command": "python -m bench.api_events " + " ".join(sys.argv[1:]),
                "arguments": vars(arguments) | {"postgres_url": "(given)"},
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "figures": figures,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"written: {results}")


if __name__ == "__main__":
    main()
