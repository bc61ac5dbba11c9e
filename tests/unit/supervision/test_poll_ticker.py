"""A wave's sessions are woken to check their limits by one timer for the whole wave.

Each followed session waits on its queue of events; one that heard nothing is woken every
`poll_seconds` to check its deadline, cost cap, server and lease. One timer for the wave does it
(a tick put in each waiting session's empty queue), where a timeout per session and per event
was a timer each, and a silent session's wake-up a cancelled wait (measured: ~7 % of a run
worker's CPU in a 300-session burst). Ticks do not pile up behind a busy session, and the timer
stops with the last session it wakes.
"""

from __future__ import annotations

import asyncio

from resources.opencode.models import ServerEvent
from services.supervision.poll_ticker import PollTicker, is_tick

EVERY = 0.01


async def _get(queue: asyncio.Queue[ServerEvent], seconds: float = 1.0) -> ServerEvent:
    return await asyncio.wait_for(queue.get(), seconds)


def test_a_silent_session_is_woken_every_interval_and_an_event_reaches_it_as_before() -> None:
    async def run() -> list[bool]:
        ticker = PollTicker(EVERY)
        queue: asyncio.Queue[ServerEvent] = asyncio.Queue()
        seen = []
        with ticker.waking(queue):
            seen.append(is_tick(await _get(queue)))
            seen.append(is_tick(await _get(queue)))
            queue.put_nowait(ServerEvent(type="session.idle", properties={"sessionID": "s"}))
            seen.append(is_tick(await _get(queue)))
        return seen

    assert asyncio.run(run()) == [True, True, False]


def test_ticks_do_not_pile_up_behind_a_session_busy_elsewhere() -> None:
    async def run() -> int:
        ticker = PollTicker(EVERY)
        queue: asyncio.Queue[ServerEvent] = asyncio.Queue()
        with ticker.waking(queue):
            await asyncio.sleep(EVERY * 10)  # e.g. a slow request to its agent
            return queue.qsize()

    assert asyncio.run(run()) == 1


def test_one_timer_wakes_every_session_and_stops_with_the_last() -> None:
    async def run() -> tuple[int, bool, bool]:
        ticker = PollTicker(EVERY)
        queues: list[asyncio.Queue[ServerEvent]] = [asyncio.Queue() for _ in range(50)]
        tasks_before = len(asyncio.all_tasks())
        with ticker.waking(queues[0]):
            for queue in queues[1:]:
                ticker.watch(queue)
            tasks_while = len(asyncio.all_tasks())
            woken = await asyncio.gather(*(_get(queue) for queue in queues))
            for queue in queues[1:]:
                ticker.forget(queue)
        await asyncio.sleep(EVERY * 3)
        return tasks_while - tasks_before, all(map(is_tick, woken)), ticker.running

    timers, all_woken, running = asyncio.run(run())
    assert timers == 1
    assert all_woken
    assert not running


def test_a_session_that_starts_waiting_after_the_timer_stopped_starts_it_again() -> None:
    async def run() -> bool:
        ticker = PollTicker(EVERY)
        first: asyncio.Queue[ServerEvent] = asyncio.Queue()
        with ticker.waking(first):
            await _get(first)
        await asyncio.sleep(EVERY * 3)
        second: asyncio.Queue[ServerEvent] = asyncio.Queue()
        with ticker.waking(second):
            return is_tick(await _get(second))

    assert asyncio.run(run())
