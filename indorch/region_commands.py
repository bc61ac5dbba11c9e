"""`indorch region replicate`: ship tenants' session history from their home region to a replica
region, and re-publish it on the replica's Redis (docs/multi-region.md). Runs until stopped
(Ctrl-C or SIGTERM), or one catch-up with `--once`."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

import typer

from indorch.output import console, print_record

region_app = typer.Typer(help="Multi-region: replication between regions.", no_args_is_help=True)


@region_app.command("replicate")
def replicate(
    home_url: str = typer.Option(
        ...,
        "--from",
        envvar="INDORCH_REGION_HOME_DATABASE_URL",
        help="The home region's application database (PostgreSQL URL).",
    ),
    replica_url: str = typer.Option(
        ...,
        "--to",
        envvar="INDORCH_REGION_REPLICA_DATABASE_URL",
        help="The replica region's application database (PostgreSQL URL).",
    ),
    replica_redis_url: str | None = typer.Option(
        None,
        "--to-redis",
        envvar="INDORCH_REGION_REPLICA_REDIS_URL",
        help="The replica region's Redis, for its live streams (unset: none).",
    ),
    tenants: list[str] = typer.Option(
        [], "--tenant", help="Replicate only this tenant (repeatable; default: every tenant)."
    ),
    interval: float = typer.Option(
        0.2, "--interval", min=0.01, help="Seconds between passes when nothing is new."
    ),
    once: bool = typer.Option(False, "--once", help="Catch up once, print what was done, exit."),
    as_json: bool = typer.Option(False, "--json", help="With --once: print the counts as JSON."),
) -> None:
    """Replicate sessions and their events, by each session's seq, exactly once and in order."""
    from resources.database import Database
    from resources.database.schema_version import ensure_current
    from resources.redis.live_events import RedisEventPublisher
    from services.region_replication import RegionReplicator, ReplicationPass

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    home, replica = Database(home_url), Database(replica_url)
    publisher = RedisEventPublisher(replica_redis_url) if replica_redis_url else None
    try:
        for database in (home, replica):
            ensure_current(database.engine)
        replicator = RegionReplicator(home, replica, publisher, tenants=tenants or None)
        if once:
            print_record(replicator.catch_up().as_record(), as_json)
            return
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())

        def report(done: ReplicationPass) -> None:
            if not done.idle or done.held_back:
                record: dict[str, Any] = done.as_record()
                console.print(" ".join(f"{key}={value}" for key, value in record.items()))

        try:
            replicator.run(stop, interval, on_pass=report)
        except KeyboardInterrupt:
            stop.set()
    finally:
        if publisher is not None:
            publisher.close()
        home.dispose()
        replica.dispose()
