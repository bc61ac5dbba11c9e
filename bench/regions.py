"""Replication lag between two regions simulated on one machine, and the catch-up after a cut link.

    .venv/bin/python -m bench.regions [--tenants 2] [--sessions 10] [--rate 50] [--steady 20]
        [--cut 10] [--interval 0.05] [--postgres-url postgresql://postgres@127.0.0.1:5432/postgres]

Region A and region B each get a fresh migrated PostgreSQL database (on the one local server) and
their own `redis-server` on a free port. `indorch region replicate` runs as its own process in
"region A", reaching B's database and Redis through `standins.link_proxy.LinkProcess` (the link).
A writer records `--rate` events a second into A, spread over `--sessions` sessions of
`--tenants` tenants, as a wave does (`EventBatch` flushed, then published to A's Redis), and
notes when each commit returned. Two observers note when each event becomes visible in B:
in B's database (polled every `POLL_SECONDS` as the superuser, past row-level security) and on
B's live streams (a blocking XREAD of B's tenant streams, what B's SSE hub reads).

Phases: `--steady` seconds of steady load (the lag: commit in A -> visible in B), then the link
cut for `--cut` seconds while A keeps recording, then restored (the catch-up: from the restore
until B holds every event recorded before it, in its database and on its streams), then a short
drain. At the end B must hold every event of A exactly once with no gap in any session, and its
streams must carry each event at least once. Results: a table and `bench/results/regions.json`.

What the figures include: the replicator's pass interval (`--interval`: a pass finds nothing
new, then waits), the observers' poll interval, and after the cut the replicator's backoff (it
retries after 0.2 s, doubling up to 2 s, so a cut of several seconds adds up to 2 s to the
catch-up). All processes share one machine (2 cores), so there is no network latency in them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from bench.analysis import percentile
from bench.world import database as fresh_database
from domain.caller import Caller
from domain.tenant import Tenant
from resources.database import Database, tenant_scope
from resources.redis.keys import tenant_events_key
from resources.redis.live_events import RedisEventPublisher, decode
from services.event_batch import EventBatch
from services.factory import ServiceFactory
from services.session_service import SubmitSession
from standins.link_proxy import LinkProcess, free_port

RESULTS = Path(__file__).parent / "results" / "regions.json"
POLL_SECONDS = 0.02
DRAIN_SECONDS = 3.0
WAIT_SECONDS = 120.0
INDORCH = str(Path(sys.executable).parent / "indorch")

Key = tuple[str, int]  # (session id, seq)


@contextmanager
def redis_server(scratch: Path) -> Iterator[str]:
    binary = shutil.which("redis-server") or "redis-server"
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=scratch,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url, socket_connect_timeout=0.2)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        yield url
    finally:
        client.close()
        process.kill()
        process.wait(5)


@dataclass
class Clocks:
    """When each event was committed in A, and when it was first seen in B."""

    committed: dict[Key, float] = field(default_factory=dict)
    in_database: dict[Key, float] = field(default_factory=dict)
    on_stream: dict[Key, float] = field(default_factory=dict)
    stream_copies: dict[Key, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _writer(
    database: Database,
    publisher: RedisEventPublisher,
    sessions: list[tuple[str, str]],
    rate: float,
    clocks: Clocks,
    stop: threading.Event,
) -> None:
    period = 1.0 / rate
    next_at = time.monotonic()
    n = 0
    while not stop.is_set():
        tenant, session_id = sessions[n % len(sessions)]
        batch = EventBatch()
        batch.add(session_id, "agent.tool", {"n": n, "tool": "write"})
        with tenant_scope(tenant):
            written = batch.flush(database)
        committed = time.time()
        for event in written:
            with clocks.lock:
                clocks.committed[(event.session_id, event.seq)] = committed
            publisher.publish(event)
        n += 1
        next_at += period
        stop.wait(max(0.0, next_at - time.monotonic()))


def _database_observer(url: str, clocks: Clocks, stop: threading.Event) -> None:
    engine = create_engine(url, poolclass=NullPool)
    last_id = 0
    try:
        with engine.connect() as connection:
            while not stop.is_set():
                rows = connection.execute(
                    text(
                        "SELECT id, session_id, seq FROM session_events WHERE id > :id ORDER BY id"
                    ),
                    {"id": last_id},
                ).all()
                connection.commit()
                seen = time.time()
                with clocks.lock:
                    for row_id, session_id, seq in rows:
                        clocks.in_database.setdefault((session_id, seq), seen)
                        last_id = max(last_id, row_id)
                stop.wait(POLL_SECONDS)
    finally:
        engine.dispose()


def _stream_observer(url: str, tenants: list[str], clocks: Clocks, stop: threading.Event) -> None:
    client = redis.Redis.from_url(url, decode_responses=True)
    after = {tenant_events_key(tenant): "0-0" for tenant in tenants}
    try:
        while not stop.is_set():
            answer = client.xread(after, count=1000, block=200)
            seen = time.time()
            for key, entries in answer or []:
                for entry_id, fields in entries:
                    after[key] = entry_id
                    event = decode(fields)
                    if event is None:
                        continue
                    event_key = (event.session_id, event.seq)
                    with clocks.lock:
                        clocks.on_stream.setdefault(event_key, seen)
                        clocks.stream_copies[event_key] = clocks.stream_copies.get(event_key, 0) + 1
    finally:
        client.close()


def _lags_ms(clocks: Clocks, keys: list[Key], seen: dict[Key, float]) -> dict[str, Any]:
    lags = [1000 * (seen[key] - clocks.committed[key]) for key in keys if key in seen]
    return {
        "events": len(lags),
        "p50_ms": round(percentile(lags, 0.5) or 0.0, 1),
        "p95_ms": round(percentile(lags, 0.95) or 0.0, 1),
        "max_ms": round(max(lags, default=0.0), 1),
    }


def _wait_for(keys: set[Key], seen: dict[Key, float], clocks: Clocks) -> float:
    """When the last of `keys` was seen (waits until all are)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        with clocks.lock:
            if keys <= seen.keys():
                return max(seen[key] for key in keys)
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(keys - seen.keys())} events never reached region B")
        time.sleep(0.01)


def _exactness(url: str, clocks: Clocks) -> dict[str, Any]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            copies = connection.execute(
                text(
                    "SELECT session_id, seq, count(*) FROM session_events GROUP BY session_id, seq"
                )
            ).all()
    finally:
        engine.dispose()
    by_session: dict[str, list[int]] = {}
    for session_id, seq, _count in copies:
        by_session.setdefault(session_id, []).append(seq)
    gaps = sum(1 for seqs in by_session.values() if sorted(seqs) != list(range(1, len(seqs) + 1)))
    return {
        "events_in_a": len(clocks.committed),
        "events_in_b": len(copies),
        "duplicates_in_b": sum(1 for *_key, count in copies if count > 1),
        "sessions_with_a_gap_in_b": gaps,
        "missing_in_b": len(clocks.committed.keys() - {(s, q) for s, q, _ in copies}),
        "missing_on_b_stream": len(clocks.committed.keys() - clocks.on_stream.keys()),
        "repeated_on_b_stream": sum(1 for count in clocks.stream_copies.values() if count > 1),
    }


@dataclass
class Regions:
    """What the measurement works on: A's database and Redis, B's, and the link to B."""

    url_a: str
    redis_a: str
    url_b: str
    redis_b: str
    database_link: LinkProcess
    redis_link: LinkProcess
    scratch: Path

    @property
    def linked_url_b(self) -> str:
        """B's database as the replicator reaches it: through the link."""
        linked = make_url(self.url_b).set(host="127.0.0.1", port=self.database_link.port)
        return linked.render_as_string(hide_password=False)

    @property
    def linked_redis_b(self) -> str:
        return f"redis://127.0.0.1:{self.redis_link.port}/0"

    def cut(self) -> None:
        self.database_link.cut()
        self.redis_link.cut()

    def restore(self) -> None:
        self.database_link.restore()
        self.redis_link.restore()


def _run(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    with (
        fresh_database("postgres", scratch, "region_a", args.postgres_url) as url_a,
        fresh_database("postgres", scratch, "region_b", args.postgres_url) as url_b,
        redis_server(scratch) as redis_a,
        redis_server(scratch) as redis_b,
    ):
        server = make_url(url_b)
        redis_b_port = int(redis_b.rsplit(":", 1)[1].split("/")[0])
        with (
            LinkProcess(server.host or "127.0.0.1", server.port or 5432) as database_link,
            LinkProcess("127.0.0.1", redis_b_port) as redis_link,
        ):
            regions = Regions(url_a, redis_a, url_b, redis_b, database_link, redis_link, scratch)
            return _measure(args, regions)


def _sessions(factory: ServiceFactory, tenants: list[str], count: int) -> list[tuple[str, str]]:
    operator = Caller.operator()
    for slug in tenants:
        factory.tenants().create(operator, Tenant(slug=slug, name=slug))
    sessions = []
    for number in range(count):
        tenant = tenants[number % len(tenants)]
        request = SubmitSession(title=f"session {number}", prompt="hi")
        sessions.append((tenant, factory.sessions().submit(operator, tenant, request).id))
    return sessions


def _measure(args: argparse.Namespace, regions: Regions) -> dict[str, Any]:
    database = Database(regions.url_a)
    publisher = RedisEventPublisher(regions.redis_a)
    factory = ServiceFactory(database, publish=publisher.publish)
    tenants = [f"region-{number}" for number in range(1, args.tenants + 1)]
    sessions = _sessions(factory, tenants, args.sessions)
    clocks = Clocks()
    for _tenant, session_id in sessions:  # seq 1, committed before the clocks start
        clocks.committed[(session_id, 1)] = time.time()
    command = [INDORCH, "region", "replicate", "--from", regions.url_a, "--to"]
    command += [regions.linked_url_b, "--to-redis", regions.linked_redis_b]
    passes_log = regions.scratch / "replicator.out"
    with passes_log.open("w") as out:
        replicator = subprocess.Popen(
            [*command, "--interval", str(args.interval)], stdout=out, stderr=subprocess.DEVNULL
        )
    stop_observers, stop_writer = threading.Event(), threading.Event()
    observers = [
        threading.Thread(target=_database_observer, args=(regions.url_b, clocks, stop_observers)),
        threading.Thread(
            target=_stream_observer, args=(regions.redis_b, tenants, clocks, stop_observers)
        ),
    ]
    writer = threading.Thread(
        target=_writer, args=(database, publisher, sessions, args.rate, clocks, stop_writer)
    )
    try:
        for thread in observers:
            thread.start()
        _wait_for(set(clocks.committed), clocks.in_database, clocks)  # the replicator is up
        steady_from = time.time()
        writer.start()
        time.sleep(args.steady)
        with clocks.lock:
            steady = [key for key, at in clocks.committed.items() if at >= steady_from]
        _wait_for(set(steady), clocks.in_database, clocks)  # the steady phase's events all in
        _wait_for(set(steady), clocks.on_stream, clocks)  # B before the cut (the writer goes on)
        cut_at = time.time()
        regions.cut()
        time.sleep(args.cut)
        with clocks.lock:
            backlog = {key for key, at in clocks.committed.items() if at >= cut_at}
            before_restore = set(clocks.committed)
        restored_at = time.time()
        regions.restore()
        caught_up_db = _wait_for(before_restore, clocks.in_database, clocks) - restored_at
        caught_up_stream = _wait_for(before_restore, clocks.on_stream, clocks) - restored_at
        time.sleep(DRAIN_SECONDS)
        stop_writer.set()
        writer.join()
        with clocks.lock:
            everything = set(clocks.committed)
        _wait_for(everything, clocks.in_database, clocks)
        _wait_for(everything, clocks.on_stream, clocks)
    finally:
        stop_writer.set()
        if writer.is_alive():
            writer.join()
        replicator.send_signal(signal.SIGTERM)
        replicator.wait(30)
        stop_observers.set()
        for thread in observers:
            thread.join(10)
        publisher.close()
        database.dispose()
    return {
        "tenants": args.tenants,
        "sessions": args.sessions,
        "rate_events_per_s": args.rate,
        "pass_interval_s": args.interval,
        "steady": {
            "seconds": args.steady,
            "events_per_s_recorded": round(len(steady) / args.steady, 1),
            "to_b_history": _lags_ms(clocks, steady, clocks.in_database),
            "to_b_live_stream": _lags_ms(clocks, steady, clocks.on_stream),
        },
        "cut": {
            "seconds": args.cut,
            "events_recorded_during_cut": len(backlog),
            "catch_up_to_b_history_s": round(caught_up_db, 2),
            "catch_up_to_b_live_stream_s": round(caught_up_stream, 2),
        },
        "shipping_pass_ms": _pass_times(passes_log),
        "exactness": _exactness(regions.url_b, clocks),
    }


def _pass_times(log: Path) -> dict[str, Any]:
    """How long the replicator's passes that shipped something took (its report lines)."""
    seconds = [
        float(word.split("=")[1])
        for line in log.read_text().splitlines()
        for word in line.split()
        if word.startswith("seconds=")
    ]
    return {
        "passes": len(seconds),
        "p50": round(1000 * (percentile(seconds, 0.5) or 0.0), 1),
        "p95": round(1000 * (percentile(seconds, 0.95) or 0.0), 1),
    }


def _row(label: str, *cells: object) -> str:
    return f"{label:<32}" + "".join(f"{cell!s:>9}" for cell in cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=2)
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--rate", type=float, default=50.0, help="events a second, in region A")
    parser.add_argument("--steady", type=float, default=20.0, help="seconds of steady load")
    parser.add_argument("--cut", type=float, default=10.0, help="seconds the link stays cut")
    parser.add_argument("--interval", type=float, default=0.05, help="replicator's pass interval")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    load_before = round(os.getloadavg()[0], 1)  # the machine is shared: the figures depend on it
    with tempfile.TemporaryDirectory() as scratch:
        result = _run(args, Path(scratch))
    steady, cut, exact = result["steady"], result["cut"], result["exactness"]
    print(_row("commit in A -> visible in B", "events", "p50 ms", "p95 ms", "max ms"))
    for label, key in (
        ("B's history (database)", "to_b_history"),
        ("B's live stream", "to_b_live_stream"),
    ):
        lag = steady[key]
        print(_row(label, lag["events"], lag["p50_ms"], lag["p95_ms"], lag["max_ms"]))
    print(
        f"link cut {cut['seconds']} s ({cut['events_recorded_during_cut']} events recorded in A "
        f"meanwhile): B's history caught up {cut['catch_up_to_b_history_s']} s after the "
        f"restore, its live stream {cut['catch_up_to_b_live_stream_s']} s"
    )
    passes = result["shipping_pass_ms"]
    print(
        f"replicator: {passes['passes']} passes shipped something, each took p50 "
        f"{passes['p50']} ms, p95 {passes['p95']} ms"
    )
    print(
        f"exactness: {exact['events_in_a']} events in A, {exact['events_in_b']} in B, "
        f"{exact['duplicates_in_b']} duplicates, {exact['sessions_with_a_gap_in_b']} sessions "
        f"with a gap, {exact['missing_on_b_stream']} missing on B's stream, "
        f"{exact['repeated_on_b_stream']} repeated on it"
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    options = {k: v for k, v in vars(args).items() if k not in ("output", "postgres_url")}
    document = {
        "command": "python -m bench.regions "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in options.items()),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average_1min_before_after": [load_before, round(os.getloadavg()[0], 1)],
        },
        "simulation": "two regions on one machine: one PostgreSQL server (two databases), two "
        "redis-server processes, a TCP proxy as the link; no network latency",
        **result,
    }
    args.output.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {args.output.name}")


if __name__ == "__main__":
    main()
