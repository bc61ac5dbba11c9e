"""A session run in region A is in region B's history and live stream, each event exactly once
and in order, also when the link between the regions is cut while A keeps recording and then
restored (docs/multi-region.md).

Region A records through the real services (submit, claim, a wave's `EventBatch` flushed and
published, cancel); a `RegionReplicator` in a thread ships A's history to B through a TCP proxy
the test cuts; region B's API serves the SSE stream its readers follow.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from domain.caller import Caller
from domain.events import SessionEvent
from domain.tenant import Role, Tenant
from resources.redis.live_events import RedisEventReader
from services.event_batch import EventBatch
from services.region_replication import RegionReplicator
from services.session_service import SubmitSession
from tests.integration.api.conftest import ApiTenant
from tests.integration.api.test_live_events import SseReader
from tests.integration.cli.support import ok, start_indorch
from tests.integration.regions.conftest import (
    Link,
    Region,
    RunningReplicator,
    running_replicator,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

OPERATOR = Caller.operator()
WAIT_SECONDS = 30.0
LEASE = timedelta(minutes=5)


def _wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _tenant(region: Region, slug: str) -> None:
    region.factory.tenants().create(OPERATOR, Tenant(slug=slug, name=slug))


def _start_session(region: Region, tenant: str, title: str) -> str:
    """Submitted and claimed by a wave, as the dispatch sensor does: seq 1 and 2."""
    sessions = region.factory.sessions()
    session_id = sessions.submit(OPERATOR, tenant, SubmitSession(title=title, prompt="hi")).id
    sessions.claim(tenant, session_id, owner="wave-1", lease=LEASE)
    return session_id


def _record(region: Region, tenant: str, session_id: str, first: int, last: int) -> None:
    """The agent's observations, as a wave records them: flushed together, then published."""
    from resources.database import tenant_scope

    for n in range(first, last + 1):
        batch = EventBatch()
        batch.add(session_id, "agent.tool", {"n": n, "tool": "write"})
        with tenant_scope(tenant):
            written = batch.flush(region.database)
        for event in written:
            region.publisher.publish(event)


def _history(region: Region, tenant: str, session_id: str) -> list[SessionEvent]:
    return region.factory.sessions().events(OPERATOR, tenant, session_id)


def _newest_seq(region: Region, tenant: str, session_id: str) -> int:
    try:
        events = _history(region, tenant, session_id)
    except Exception:  # not replicated yet: NotFound
        return 0
    return events[-1].seq if events else 0


def _copies_per_seq(region: Region, tenant: str) -> dict[tuple[str, int], int]:
    """Counted as the server's superuser, past every filter: what is really stored."""
    engine = create_engine(region.database_url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT session_id, seq, count(*) FROM session_events "
                    "WHERE tenant_id = :tenant GROUP BY session_id, seq"
                ),
                {"tenant": tenant},
            )
            return {(session_id, seq): count for session_id, seq, count in rows}
    finally:
        engine.dispose()


def _same(event: SessionEvent) -> tuple[object, ...]:
    return (event.seq, event.event_type, event.old_status, event.new_status, event.data, event.at)


def test_a_session_run_in_region_a_appears_in_region_bs_history_and_live_stream(
    region_a: Region, region_b: Region, replicator: RunningReplicator
) -> None:
    tenant = "acme"
    _tenant(region_a, tenant)  # region B has never heard of it: the replicator brings it
    session_id = _start_session(region_a, tenant, "run in A")
    _record(region_a, tenant, session_id, 1, 5)
    region_a.factory.sessions().cancel(OPERATOR, tenant, session_id, "done watching")
    home = _history(region_a, tenant, session_id)
    assert [e.seq for e in home] == list(range(1, 9))

    _wait_until(lambda: _newest_seq(region_b, tenant, session_id) == 8, "B's history")
    assert [_same(e) for e in _history(region_b, tenant, session_id)] == [_same(e) for e in home]
    replica = region_b.factory.sessions().get(OPERATOR, tenant, session_id)
    assert replica.status == region_a.factory.sessions().get(OPERATOR, tenant, session_id).status

    reader = RedisEventReader(region_b.redis.url)
    try:
        _wait_until(
            lambda: len(reader.read_session_events(tenant, session_id, count=100)) == 8,
            "B's live stream",
        )
        streamed = reader.read_session_events(tenant, session_id, count=100)
    finally:
        reader.close()
    assert [entry.event.seq for entry in streamed] == list(range(1, 9))

    replicator.halt()  # a restart: a new replicator resumes from B's cursors, ships nothing again
    again = RegionReplicator(region_a.database, replicator.replica).catch_up()
    assert (again.sessions, again.events) == (0, 0)
    assert set(_copies_per_seq(region_b, tenant).values()) == {1}


def test_events_recorded_while_the_link_is_cut_arrive_once_in_order_when_it_is_restored(
    region_a: Region, region_b: Region, link: Link
) -> None:
    tenant = ApiTenant("globex")
    _tenant(region_a, tenant.slug)
    # The tenant's state (its row, its keys) reaches B by the tenant-state channel (logical
    # replication in the design); here it is provisioned in B directly.
    _tenant(region_b, tenant.slug)
    _, tenant.keys[Role.VIEWER] = region_b.factory.api_keys().create(
        OPERATOR, tenant.slug, "viewer", role=Role.VIEWER
    )
    with running_replicator(region_a, region_b, link):
        watched = _start_session(region_a, tenant.slug, "watched from B")
        others = [_start_session(region_a, tenant.slug, f"other {i}") for i in range(2)]
        _wait_until(lambda: _newest_seq(region_b, tenant.slug, watched) == 2, "the session in B")
        url = f"{region_b.api_url}/api/v1/sessions/{watched}/events"
        sse = SseReader(
            url,
            tenant.headers(Role.VIEWER),
            until=lambda events: any(e.seq >= 42 for e in events),
        )
        sse.wait_for(lambda events: any(e.seq >= 2 for e in events))
        _record(region_a, tenant.slug, watched, 1, 10)  # seq 3..12, live through the link
        sse.wait_for(lambda events: any(e.seq >= 12 for e in events))

        link.cut()
        for session_id in (watched, *others):  # A keeps working while B is out of reach
            _record(region_a, tenant.slug, session_id, 11, 30)
        assert _newest_seq(region_b, tenant.slug, watched) == 12  # B is out of reach
        link.restore()

        _record(region_a, tenant.slug, watched, 31, 40)  # seq 33..42, after the restore
        sse.wait_for(lambda events: any(e.seq >= 42 for e in events))
        sse.finish()
        for session_id in (watched, *others):
            home = _history(region_a, tenant.slug, session_id)
            _wait_until(
                lambda: _newest_seq(region_b, tenant.slug, session_id) == home[-1].seq,  # noqa: B023
                f"{session_id} in B",
            )
            replica = _history(region_b, tenant.slug, session_id)
            assert [_same(e) for e in replica] == [_same(e) for e in home]

    assert [e.seq for e in sse.events] == list(range(1, 43))  # live: each once, in order
    copies = _copies_per_seq(region_b, tenant.slug)
    assert set(copies.values()) == {1}  # no duplicate
    for session_id in (watched, *others):  # no gap: 1..n for every session
        seqs = sorted(seq for (sid, seq) in copies if sid == session_id)
        assert seqs == list(range(1, len(seqs) + 1))
    assert len(copies) == 42 + 2 * 22


def test_the_replicator_ships_only_the_tenants_it_is_given(
    region_a: Region, region_b: Region
) -> None:
    for slug in ("initech", "umbrella"):
        _tenant(region_a, slug)
        _record(region_a, slug, _start_session(region_a, slug, slug), 1, 3)
    RegionReplicator(region_a.database, region_b.database, tenants=["initech"]).catch_up()
    assert len(_copies_per_seq(region_b, "initech")) == 5
    assert _copies_per_seq(region_b, "umbrella") == {}


def test_the_replicate_command_catches_up_once_and_runs_until_terminated(
    region_a: Region, region_b: Region
) -> None:
    tenant = "hooli"
    _tenant(region_a, tenant)
    session_id = _start_session(region_a, tenant, "by the command")
    _record(region_a, tenant, session_id, 1, 3)
    urls = ("--from", region_a.database_url, "--to", region_b.database_url)
    redis = ("--to-redis", region_b.redis.url)

    once = json.loads(
        ok(region_a.database_url, "region", "replicate", *urls, *redis, "--once", "--json")
    )
    assert (once["sessions"], once["events"], once["published"]) == (1, 5, 5)
    assert _newest_seq(region_b, tenant, session_id) == 5

    process = start_indorch(region_a.database_url, "region", "replicate", *urls, *redis)
    try:
        _record(region_a, tenant, session_id, 4, 6)
        _wait_until(lambda: _newest_seq(region_b, tenant, session_id) == 8, "B's history")
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=WAIT_SECONDS)
    assert process.returncode == 0, (out, err)
    shipped = [int(word.split("=")[1]) for word in out.split() if word.startswith("events=")]
    assert sum(shipped) == 3  # one line per pass that shipped something
    assert set(_copies_per_seq(region_b, tenant).values()) == {1}


def test_a_replica_that_lost_its_newest_events_is_refilled_without_a_gap(
    region_a: Region, region_b: Region
) -> None:
    """The replicator remembers B's cursors between passes; a B restored from an older backup
    refuses shipments that do not follow its own cursor, and is refilled from where it is."""
    tenant = "wayne"
    _tenant(region_a, tenant)
    session_id = _start_session(region_a, tenant, "restored from a backup")
    _record(region_a, tenant, session_id, 1, 3)
    replicator = RegionReplicator(region_a.database, region_b.database)
    assert replicator.catch_up().events == 5

    engine = create_engine(region_b.database_url, poolclass=NullPool)  # B loses seq 4 and 5
    try:
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM session_events WHERE seq > 3"))
            connection.execute(text("UPDATE sessions SET last_event_seq = 3"))
    finally:
        engine.dispose()
    _record(region_a, tenant, session_id, 4, 5)  # A moves on to seq 7

    done = replicator.catch_up()
    assert done.refused == 1  # seq 6..7 after a cursor of 5 would have left a hole at 4..5
    assert [e.seq for e in _history(region_b, tenant, session_id)] == list(range(1, 8))
    assert set(_copies_per_seq(region_b, tenant).values()) == {1}
