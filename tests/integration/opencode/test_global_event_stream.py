"""The stream of every directory (`OpenCodeClient.global_event_stream`) on a real OpenCode server.

One stream serves the sessions in scratch directories of their own (what a wave follows them
on): each gets its own events, from its first step to its idle, whatever directory it works in
(one asked for under a symlink, which the server names resolved);
a session no one subscribed (another tenant's on a shared server) reaches no queue. A session
subscribed after it went idle is told so by the re-sync of its own directory.

The process's shared stream (`OpenCodeClient.shared_event_stream`), read by two waves on two
threads (each its own event loop, as in the run worker): each wave's view gets its own session's
events and never the other's.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from resources.opencode.client import OpenCodeClient
from resources.opencode.models import ServerEvent
from standins.opencode_server import OpenCodeServer
from tests.integration.opencode.test_slot_warm_up import a_scratch_repository

WAIT_SECONDS = 60.0
OPENCODE_SHARED_SERVER = True  # read by the opencode_server fixture: one server for the package


async def _until_idle(queue: asyncio.Queue[ServerEvent]) -> list[ServerEvent]:
    seen: list[ServerEvent] = []
    async with asyncio.timeout(WAIT_SECONDS):
        while True:
            event = await queue.get()
            seen.append(event)
            idle = event.type == "session.idle" or (event.status and event.status.type == "idle")
            if idle and not event.properties.get("resync"):
                return seen


def test_one_stream_follows_sessions_in_many_directories(
    tmp_path: Path, opencode_server: OpenCodeServer
) -> None:
    # The first asked for under a symlinked path: the server names its events' directory as it
    # resolved it, and they must still reach the session.
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    directories = [a_scratch_repository(tmp_path / "real" / f"slot-{n}") for n in range(3)]
    directories[0] = tmp_path / "link" / directories[0].name

    async def run() -> tuple[dict[str, list[ServerEvent]], list[ServerEvent]]:
        async with OpenCodeClient(opencode_server.url, password=opencode_server.password) as client:
            stream = client.global_event_stream()
            await stream.start(wait_seconds=10.0)
            assert stream.connected.is_set()
            try:
                followed, queues = {}, {}
                for directory in directories:
                    session = await client.create_session("global", directory=str(directory))
                    followed[str(directory)] = session.id
                # the last one is not ours: never subscribed
                ours = list(followed.items())[:2]
                for directory, session_id in ours:
                    queues[session_id] = stream.subscribe(session_id, directory)
                for directory, session_id in followed.items():
                    await client.prompt_async(
                        session_id, "[script:reply text=Done.] Say done.", directory=directory
                    )
                seen = dict(
                    zip(
                        queues,
                        await asyncio.gather(*(_until_idle(q) for q in queues.values())),
                        strict=True,
                    )
                )
                # subscribed once idle: the re-sync a reconnection runs asks its directory
                late_directory, late_id = ours[0]
                stream.unsubscribe(late_id)
                late = stream.subscribe(late_id, late_directory)
                await stream._resync()
                # the server may still send the session's own late updates (a title's
                # request ending after the idle) before or after the re-sync's event
                late_events = [late.get_nowait() for _ in range(late.qsize())]
                return seen, late_events
            finally:
                await stream.close()

    seen, late_events = asyncio.run(run())
    assert len(seen) == 2
    for session_id, events in seen.items():
        assert {e.session_id for e in events} == {session_id}
        types = [e.type for e in events]
        assert "message.updated" in types and types[-1] in ("session.idle", "session.status")
    resynced = [e for e in late_events if e.properties.get("resync")]
    assert len(resynced) == 1 and resynced[0].session_id == next(iter(seen))
    assert resynced[0].status is not None and resynced[0].status.type == "idle"


def test_waves_on_two_threads_share_the_stream_and_see_only_their_own_sessions(
    tmp_path: Path, opencode_server: OpenCodeServer
) -> None:
    directories = [a_scratch_repository(tmp_path / f"tenant-{n}") for n in range(2)]
    both_subscribed = threading.Barrier(2, timeout=WAIT_SECONDS)
    seen: dict[str, list[ServerEvent]] = {}

    async def wave(directory: Path) -> None:
        async with OpenCodeClient(opencode_server.url, password=opencode_server.password) as client:
            view = client.shared_event_stream()
            await view.start(wait_seconds=10.0)
            try:
                session = await client.create_session("shared", directory=str(directory))
                queue = view.subscribe(session.id, str(directory))
                await asyncio.to_thread(both_subscribed.wait)  # both on the stream at once
                await client.prompt_async(
                    session.id, "[script:reply text=Done.] Say done.", directory=str(directory)
                )
                seen[session.id] = await _until_idle(queue)
                await asyncio.sleep(0.5)  # anything else on its way has arrived
                seen[session.id] += [queue.get_nowait() for _ in range(queue.qsize())]
            finally:
                await view.close()

    waves = [threading.Thread(target=asyncio.run, args=(wave(d),)) for d in directories]
    for thread in waves:
        thread.start()
    for thread in waves:
        thread.join(WAIT_SECONDS * 2)
    assert len(seen) == 2
    for session_id, events in seen.items():
        assert {e.session_id for e in events} == {session_id}
        assert "message.updated" in [e.type for e in events]
