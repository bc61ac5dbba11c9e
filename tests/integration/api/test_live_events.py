"""Live events over SSE against a real uvicorn server: live, in order, resumable, Redis or not.

Events are recorded the way a wave records them (`EventBatch` flushed in one transaction, then
published to Redis after the commit) while an SSE client (httpx-sse) reads the stream; the
recorder waits for the client to have each event before it writes the next, so every event it
receives came live. The client disconnects part-way, more events are recorded, and it resumes
with the last id it received: it must then have every event exactly once, in seq order.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from httpx_sse import connect_sse

from api.app import create_app
from api.event_streams import PRUNE_ABOVE
from api.live_event_hub import LiveEventHub
from api.services import Services
from domain.caller import Caller
from domain.checkpoint import STEP_EVENT, step_checkpoint_data
from domain.events import SessionEvent
from domain.tenant import Role
from resources.database import Database, tenant_scope
from resources.database.migrate import upgrade
from resources.redis.live_events import RedisEventPublisher
from services.event_batch import EventBatch
from services.factory import ServiceFactory
from services.session_service import SubmitSession
from tests.conftest import migrated_url
from tests.integration.api.conftest import ApiTenant, _new_tenant
from tests.integration.api.support import served
from tests.integration.deploy.host import wait_for
from tests.integration.redis.conftest import RedisServerProcess, own_redis  # noqa: F401

WAIT_SECONDS = 10.0
NOTHING_LISTENS = "redis://127.0.0.1:1/0"  # port 1: refused at once
# The hub's timings here (configuration, not what is tested): a source's blocking read on Redis
# (its thread ends within one when the test closes the hub: the default 1 s was each test's
# last second), and its pause between database reads while Redis is down (default 0.5 s).
HUB_TIMINGS: dict[str, Any] = {"block_ms": 200, "poll_interval": 0.05}


@dataclass
class Stack:
    """The app on one database, publishing to (and reading from) one Redis URL, served."""

    wiring: Services
    publisher: RedisEventPublisher
    url: str
    app: FastAPI

    def use_hub(self, **options: Any) -> LiveEventHub:
        """A new live event hub for the app (`HUB_TIMINGS`, then `options`), the last closed."""
        previous = getattr(self.app.state, "live_event_hub", None)
        if previous is not None:
            previous.close()
        hub = LiveEventHub(
            self.wiring.factory.live_events(),
            self.wiring.redis_url,
            **{**HUB_TIMINGS, **options},
        )
        self.app.state.live_event_hub = hub
        return hub

    def submit(self, tenant: ApiTenant, title: str = "watch me") -> str:
        request = SubmitSession(title=title, prompt="say hello")
        return self.wiring.factory.sessions().submit(Caller.operator(), tenant.slug, request).id

    def record(self, tenant: ApiTenant, session_id: str, n: int) -> None:
        """An agent's observation, as a wave records it: written, then published."""
        batch = EventBatch()
        batch.add(session_id, "agent.tool", {"n": n, "tool": "write", "tokens": 10 * n})
        with tenant_scope(tenant.slug):
            written = batch.flush(self.wiring.database)
        for event in written:
            self.publisher.publish(event)

    def record_step(self, tenant: ApiTenant, session_id: str, said: str) -> None:
        """A completed agent step, as a wave records it (its checkpoint written with it)."""
        batch = EventBatch()
        data = step_checkpoint_data(
            attempt=0,
            message_id="msg-1",
            text=said,
            files_changed=["notes.md"],
            tokens_in=120,
            tokens_out=30,
        )
        batch.add(session_id, STEP_EVENT, data)
        with tenant_scope(tenant.slug):
            written = batch.flush(self.wiring.database)
        for event in written:
            self.publisher.publish(event)


@contextmanager
def _stack(database_url: str, redis_url: str) -> Iterator[Stack]:
    upgrade(database_url)
    database = Database(database_url)
    publisher = RedisEventPublisher(redis_url)
    wiring = Services(database, ServiceFactory(database, publish=publisher.publish), redis_url)
    try:
        app = create_app(wiring)
        with served(app) as url:
            stack = Stack(wiring, publisher, url, app)
            stack.use_hub()
            yield stack
    finally:
        publisher.close()
        database.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def stack(request: pytest.FixtureRequest, redis_url: str) -> Iterator[Stack]:
    url = migrated_url(request)
    with _stack(url, redis_url) as served:
        yield served


@dataclass
class SseReader:
    """Reads one SSE stream in a thread until `until(events)` holds, then disconnects."""

    url: str
    headers: dict[str, str]
    until: Callable[[list[SessionEvent]], bool]
    events: list[SessionEvent] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    error: BaseException | None = None
    status: int | None = None

    def __post_init__(self) -> None:
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            with (
                httpx.Client(timeout=httpx.Timeout(WAIT_SECONDS * 2)) as client,
                connect_sse(client, "GET", self.url, headers=self.headers) as source,
            ):
                self.status = source.response.status_code
                with self._changed:
                    self._changed.notify_all()
                for message in source.iter_sse():
                    event = SessionEvent.model_validate_json(message.data)
                    assert message.event == event.event_type
                    with self._changed:
                        self.events.append(event)
                        self.ids.append(message.id)
                        self._changed.notify_all()
                    if self.until(self.events):
                        return
        except BaseException as error:  # handed to the test
            self.error = error
        finally:
            with self._changed:
                self._changed.notify_all()

    def wait_for(self, condition: Callable[[list[SessionEvent]], bool]) -> None:
        deadline = time.monotonic() + WAIT_SECONDS
        with self._changed:
            while not condition(self.events):
                if self.error is not None:
                    raise self.error
                left = deadline - time.monotonic()
                assert left > 0, (
                    f"timed out; received {[(e.session_id, e.seq) for e in self.events]}"
                )
                self._changed.wait(left)

    def connected(self) -> None:
        deadline = time.monotonic() + WAIT_SECONDS
        with self._changed:
            while self.status is None and self.error is None:
                assert time.monotonic() < deadline, "the stream did not open"
                self._changed.wait(0.1)
        if self.error is not None:
            raise self.error

    def finish(self) -> None:
        self._thread.join(WAIT_SECONDS)
        assert not self._thread.is_alive(), "the reader did not finish"
        if self.error is not None:
            raise self.error


def _seqs(events: list[SessionEvent], session_id: str | None = None) -> list[int]:
    return [e.seq for e in events if session_id is None or e.session_id == session_id]


def _has(session_id: str, seq: int) -> Callable[[list[SessionEvent]], bool]:
    return lambda events: any(e.session_id == session_id and e.seq >= seq for e in events)


def _follow_session_with_a_break(stack: Stack, tenant: ApiTenant) -> None:
    """The scenario both transports must pass: live in lock-step, cut, more, resume, more."""
    session_id = stack.submit(tenant)  # seq 1: session.created
    url = f"{stack.url}/api/v1/sessions/{session_id}/events"
    headers = tenant.headers(Role.VIEWER)
    first = SseReader(url, headers, until=_has(session_id, 8))
    first.wait_for(_has(session_id, 1))
    for n in range(2, 9):  # each written only once the previous one has arrived: live
        stack.record(tenant, session_id, n)
        first.wait_for(_has(session_id, n))
    first.finish()
    assert _seqs(first.events) == list(range(1, 9))
    assert first.ids == [str(seq) for seq in range(1, 9)]
    assert first.events[0].event_type == "session.created"
    assert first.events[3].data == {"n": 4, "tool": "write", "tokens": 40}

    for n in range(9, 13):  # while nobody listens
        stack.record(tenant, session_id, n)
    second = SseReader(url, {**headers, "Last-Event-ID": first.ids[-1]}, _has(session_id, 16))
    second.wait_for(_has(session_id, 12))
    for n in range(13, 17):
        stack.record(tenant, session_id, n)
        second.wait_for(_has(session_id, n))
    second.finish()
    assert _seqs(second.events) == list(range(9, 17))  # nothing lost, nothing twice


def test_a_session_stream_is_live_in_order_and_resumes_with_nothing_lost_or_twice(
    stack: Stack,
) -> None:
    tenant = _new_tenant(stack.wiring.factory)
    _follow_session_with_a_break(stack, tenant)


def test_the_tenant_stream_carries_every_session_of_the_tenant_only_and_resumes(
    stack: Stack,
) -> None:
    tenant = _new_tenant(stack.wiring.factory)
    other = _new_tenant(stack.wiring.factory)
    earlier = stack.submit(tenant, "before the stream opened")
    url = f"{stack.url}/api/v1/events"
    headers = tenant.headers(Role.VIEWER)

    first = SseReader(url, headers, until=lambda events: len(events) >= 8)
    first.connected()
    one, two = stack.submit(tenant, "one"), stack.submit(tenant, "two")
    theirs = stack.submit(other, "another tenant's")
    first.wait_for(_has(two, 1))
    for n in range(2, 4):
        for session_id in (one, two, earlier):
            stack.record(tenant, session_id, n)
            stack.record(other, theirs, n)
            first.wait_for(_has(session_id, n))
    first.finish()
    assert {e.tenant_id for e in first.events} == {tenant.slug}
    cut_at = first.ids[-1]
    received = {(e.session_id, e.seq) for e in first.events}
    assert len(received) == 8

    for n in range(4, 6):  # while nobody listens
        for session_id in (one, two, earlier):
            stack.record(tenant, session_id, n)
    expected = {(s, seq) for s in (one, two) for seq in range(1, 6)}
    expected |= {(earlier, seq) for seq in range(2, 6)}  # its seq 1 came before the stream
    second = SseReader(
        url,
        {**headers, "Last-Event-ID": cut_at},
        until=lambda events: received | {(e.session_id, e.seq) for e in events} >= expected,
    )
    second.finish()
    again = [(e.session_id, e.seq) for e in second.events]
    assert len(again) == len(set(again)), "an event came twice"
    assert not received & set(again), "an event the reader had came again"
    assert received | set(again) == expected
    for session_id in (one, two, earlier):  # each session's events in seq order
        seqs = _seqs(first.events + second.events, session_id)
        assert seqs == sorted(seqs)


def test_a_reader_sees_live_what_the_agent_said_at_each_step_with_its_secrets_scrubbed(
    stack: Stack,
) -> None:
    tenant = _new_tenant(stack.wiring.factory)
    session_id = stack.submit(tenant)
    headers = tenant.headers(Role.VIEWER)
    is_step = _has(session_id, 2)
    one = SseReader(f"{stack.url}/api/v1/sessions/{session_id}/events", headers, until=is_step)
    every = SseReader(f"{stack.url}/api/v1/events", headers, until=is_step)
    one.wait_for(_has(session_id, 1))
    every.connected()

    stack.record_step(tenant, session_id, "I wrote notes.md; the API key is sk-live-" + "k" * 24)

    for reader in (one, every):
        reader.finish()
        [step] = [e for e in reader.events if e.event_type == STEP_EVENT]
        assert step.data["text"] == "I wrote notes.md; the API key is [REDACTED:openai_key]"
        assert step.data["files_changed"] == ["notes.md"]
        assert (step.data["tokens_in"], step.data["tokens_out"]) == (120, 30)
        assert step.data["checkpoint"] == 1


def test_another_tenants_session_answers_404_and_a_bad_last_event_id_is_refused(
    stack: Stack,
) -> None:
    tenant = _new_tenant(stack.wiring.factory)
    other = _new_tenant(stack.wiring.factory)
    theirs = stack.submit(other)
    mine = stack.submit(tenant)
    with httpx.Client(base_url=stack.url, timeout=WAIT_SECONDS) as client:
        answer = client.get(f"/api/v1/sessions/{theirs}/events", headers=tenant.headers())
        assert answer.status_code == 404
        assert answer.json()["error"]["code"] == "not_found"
        assert other.slug not in answer.text
        missing = client.get("/api/v1/sessions/SESSION-nope/events", headers=tenant.headers())
        assert missing.status_code == 404
        no_key = {"X-Tenant-ID": tenant.slug}
        assert client.get(f"/api/v1/sessions/{mine}/events", headers=no_key).status_code == 401
        assert client.get("/api/v1/events", headers=no_key).status_code == 401
        for path, bad in [
            (f"/api/v1/sessions/{mine}/events", "-1"),
            (f"/api/v1/sessions/{mine}/events", "seven"),
            ("/api/v1/events", "12~not a session:1"),
            ("/api/v1/events", "x"),
        ]:
            headers = {**tenant.headers(), "Last-Event-ID": bad}
            answer = client.get(path, headers=headers)
            assert answer.status_code == 422, (path, bad)
            assert answer.json()["error"]["details"]["field"] == "Last-Event-ID"


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_with_redis_unreachable_the_streams_are_served_from_the_database(
    database: str, request: pytest.FixtureRequest, migrated_sqlite_url: str
) -> None:
    url = migrated_sqlite_url if database == "sqlite" else request.getfixturevalue("postgres_url")
    with _stack(url, NOTHING_LISTENS) as served:
        tenant = _new_tenant(served.wiring.factory)
        _follow_session_with_a_break(served, tenant)
        assert served.publisher.dropped > 0  # nothing reached Redis: all of it came from the DB


def test_redis_stopped_while_streaming_the_streams_go_on_from_the_database(
    own_redis: RedisServerProcess,  # noqa: F811
    migrated_sqlite_url: str,
) -> None:
    with _stack(migrated_sqlite_url, own_redis.url) as served:
        tenant = _new_tenant(served.wiring.factory)
        session_id = served.submit(tenant)
        headers = tenant.headers(Role.MEMBER)
        one = SseReader(
            f"{served.url}/api/v1/sessions/{session_id}/events", headers, _has(session_id, 9)
        )
        everything = SseReader(f"{served.url}/api/v1/events", headers, _has(session_id, 9))
        one.wait_for(_has(session_id, 1))
        everything.connected()
        for n in range(2, 5):
            served.record(tenant, session_id, n)
            one.wait_for(_has(session_id, n))
            everything.wait_for(_has(session_id, n))
        assert served.publisher.dropped == 0
        own_redis.kill()
        for n in range(5, 10):
            served.record(tenant, session_id, n)
            one.wait_for(_has(session_id, n))
            everything.wait_for(_has(session_id, n))
        one.finish()
        everything.finish()
        assert served.publisher.dropped > 0
        assert _seqs(one.events) == list(range(1, 10))
        assert _seqs(everything.events) == list(range(2, 10))


def test_an_event_recorded_before_the_source_starts_is_still_delivered(stack: Stack) -> None:
    """The route reads the session's newest seq, then subscribes; the hub's source thread may
    start only after another event was recorded and published. It follows from the seq the
    route read, so that event reaches the subscriber (had it followed from what the database
    held when it started, the reader would wait for it forever: found under load)."""
    hub = LiveEventHub(stack.wiring.factory.live_events(), stack.wiring.redis_url, **HUB_TIMINGS)
    tenant = _new_tenant(stack.wiring.factory)
    session_id = stack.submit(tenant)  # seq 1
    newest = hub.log.latest_seq(tenant.slug, session_id)  # what the route read
    stack.record(tenant, session_id, 2)  # recorded and published before the source runs

    async def follow() -> list[SessionEvent]:
        subscription = hub.subscribe_session(tenant.slug, session_id, newest)
        received: list[SessionEvent] = []
        try:
            while not _has(session_id, 2)(received):
                received.extend(await asyncio.wait_for(subscription.next(), WAIT_SECONDS) or [])
        finally:
            hub.unsubscribe(subscription)
        return received

    try:
        assert newest == 1
        assert _seqs(asyncio.run(follow())) == [2]
    finally:
        hub.close()


def test_many_readers_of_one_session_share_one_source(stack: Stack) -> None:
    """Twenty clients, one hub source: each gets every event once, in order."""
    tenant = _new_tenant(stack.wiring.factory)
    session_id = stack.submit(tenant)
    url = f"{stack.url}/api/v1/sessions/{session_id}/events"
    readers = [SseReader(url, tenant.headers(Role.VIEWER), _has(session_id, 6)) for _ in range(20)]
    for reader in readers:
        reader.wait_for(_has(session_id, 1))
    assert stack.app.state.live_event_hub.sources() == 1
    for n in range(2, 7):
        stack.record(tenant, session_id, n)
    for reader in readers:
        reader.finish()
        assert _seqs(reader.events) == list(range(1, 7))


def test_a_tenant_stream_of_many_sessions_keeps_its_id_short_and_still_resumes_exactly(
    stack: Stack,
) -> None:
    """Past 32 listed sessions the cursor's anchor moves to the horizon (here after 0.5 s) and
    the sessions it accounts for leave the list: the id stays bounded, resuming is still exact."""
    hub = stack.use_hub(grace_seconds=0.5, resync_interval=0.5)
    tenant = _new_tenant(stack.wiring.factory)
    sessions = [stack.submit(tenant, f"session {n}") for n in range(40)]
    first_session, second_session = sessions[0], sessions[1]
    url = f"{stack.url}/api/v1/events"
    headers = tenant.headers(Role.VIEWER)
    first = SseReader(url, headers, until=_has(first_session, 3))
    first.connected()
    for session_id in sessions:
        stack.record(tenant, session_id, 2)
    first.wait_for(lambda events: len(events) == 40)
    assert max(event_id.count(":") for event_id in first.ids) > 32  # the list grew
    newest = hub.log.newest_event_id(tenant.slug)
    wait_for(
        "the horizon",
        lambda: (hub.tenant_horizon(tenant.slug) or 0) >= newest,
        within=WAIT_SECONDS,
        every=0.02,
    )
    stack.record(tenant, first_session, 3)
    first.finish()
    short = first.ids[-1]
    assert short.count(":") <= PRUNE_ABOVE + 1, short  # the list stays bounded
    assert int(short.split("~")[0]) > int(first.ids[0].split("~")[0])  # the anchor moved up
    assert short.endswith(f"{first_session}:3"), short

    stack.record(tenant, second_session, 3)  # while nobody listens
    stack.record(tenant, first_session, 4)
    second = SseReader(url, {**headers, "Last-Event-ID": short}, until=_has(first_session, 4))
    second.finish()
    assert [(e.session_id, e.seq) for e in second.events] == [
        (second_session, 3),
        (first_session, 4),
    ]


def test_an_idle_stream_gets_keepalive_comments(stack: Stack) -> None:
    stack.use_hub(keepalive_seconds=0.2)
    tenant = _new_tenant(stack.wiring.factory)
    session_id = stack.submit(tenant)
    lines: list[str] = []
    with (
        httpx.Client(timeout=WAIT_SECONDS) as client,
        client.stream(
            "GET", f"{stack.url}/api/v1/sessions/{session_id}/events", headers=tenant.headers()
        ) as answer,
    ):
        assert answer.headers["content-type"].startswith("text/event-stream")
        for line in answer.iter_lines():
            lines.append(line)
            if lines.count(": keepalive") == 2:
                break
    assert lines[0] == ": stream open"
    assert "id: 1" in lines and "event: session.created" in lines
