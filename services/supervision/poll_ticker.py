"""One timer per wave wakes its followed sessions to check their limits (`SessionFollower`).

A session waits on its queue of events without a timeout of its own: every `every_seconds` the
ticker puts a tick in each waiting session's queue that is empty. A timeout per wait was a timer
per session and per event, and a silent session's wake-up a cancelled wait: in a 300-session
burst ~7 % of a run worker's CPU (README, Performance).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from resources.opencode.models import ServerEvent

_TICK_TYPE = "indorch.poll"


def is_tick(event: ServerEvent) -> bool:
    """A wake-up from the ticker, not an event of the agent's server."""
    return event.type == _TICK_TYPE


class PollTicker:
    def __init__(self, every_seconds: float) -> None:
        self._every = every_seconds
        self._queues: dict[int, asyncio.Queue[ServerEvent]] = {}
        self._task: asyncio.Task[None] | None = None
        self._tick = ServerEvent(type=_TICK_TYPE)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @contextmanager
    def waking(self, queue: asyncio.Queue[ServerEvent]) -> Iterator[None]:
        """While the block runs, `queue` gets a tick each interval it is found empty."""
        self.watch(queue)
        try:
            yield
        finally:
            self.forget(queue)

    def watch(self, queue: asyncio.Queue[ServerEvent]) -> None:
        self._queues[id(queue)] = queue
        if not self.running:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="poll ticker")

    def forget(self, queue: asyncio.Queue[ServerEvent]) -> None:
        self._queues.pop(id(queue), None)

    async def _run(self) -> None:
        """Ends once no session waits (the next `watch` starts it again)."""
        while self._queues:
            await asyncio.sleep(self._every)
            for queue in self._queues.values():
                if queue.empty():
                    queue.put_nowait(self._tick)
