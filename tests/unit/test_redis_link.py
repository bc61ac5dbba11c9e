"""A `RedisLink` turns Redis failures into `RedisUnavailable`, marks itself degraded, warns once
per outage (again only after `warn_every`), waits between probes with a growing backoff, and
logs the recovery. The actions here fail or succeed by hand; no server is involved.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
import redis

from resources.redis.link import ProbeBackoff, RedisLink, RedisUnavailable

LOGGER = "resources.redis.link"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def refused(_client: redis.Redis) -> None:
    raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused.")


def answered(_client: redis.Redis) -> str:
    return "PONG"


def make_link(clock: FakeClock, first: float = 1.0, longest: float = 8.0) -> RedisLink:
    return RedisLink(
        "redis://:secret@127.0.0.1:1/0",
        purpose="events",
        probe_backoff=ProbeBackoff(first=first, longest=longest),
        warn_every=60.0,
        clock=clock,
    )


def test_a_healthy_link_passes_results_through() -> None:
    link = make_link(FakeClock())
    assert link.call(answered) == "PONG"
    assert not link.degraded


def test_a_failure_raises_unavailable_and_marks_degraded() -> None:
    link = make_link(FakeClock())
    with pytest.raises(RedisUnavailable, match="events"):
        link.call(refused)
    assert link.degraded


def test_while_waiting_for_the_next_probe_no_call_reaches_redis() -> None:
    clock = FakeClock()
    link = make_link(clock, first=1.0)
    with pytest.raises(RedisUnavailable):
        link.call(refused)
    reached: list[str] = []
    clock.now += 0.5
    with pytest.raises(RedisUnavailable, match="next probe"):
        link.call(lambda client: reached.append("called"))
    assert reached == []
    clock.now += 0.6  # past the first backoff: this call probes, and Redis is back
    assert link.call(answered) == "PONG"
    assert not link.degraded


def test_calls_from_an_event_loop_share_the_breaker_with_the_thread_calls() -> None:
    """`call_async` (the API's rate count, on the event loop) fails, waits out and recovers as
    `call` does, on the same outage: a failure on either side holds both off until the probe."""
    clock = FakeClock()
    link = make_link(clock, first=1.0)

    async def refused_async(_client: object) -> None:
        raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused.")

    async def answered_async(_client: object) -> str:
        return "PONG"

    reached: list[str] = []

    async def scenario() -> None:
        with pytest.raises(RedisUnavailable, match="events"):
            await link.call_async(refused_async)
        assert link.degraded
        clock.now += 0.5
        with pytest.raises(RedisUnavailable, match="next probe"):
            link.call(lambda client: reached.append("thread"))

        async def reach(_client: object) -> None:
            reached.append("loop")

        with pytest.raises(RedisUnavailable, match="next probe"):
            await link.call_async(reach)
        clock.now += 0.6  # past the first backoff: this call probes, and Redis is back
        assert await link.call_async(answered_async) == "PONG"
        assert not link.degraded
        await link.aclose()

    asyncio.run(scenario())
    assert reached == []


@pytest.mark.parametrize(
    ("failures", "expected_wait"),
    [
        (1, 1.0),  # the first probe comes after `first`
        (2, 2.0),  # then doubles
        (3, 4.0),
        (10, 8.0),  # and stops growing at `longest`
    ],
)
def test_probe_backoff_doubles_up_to_the_longest(failures: int, expected_wait: float) -> None:
    assert ProbeBackoff(first=1.0, longest=8.0).wait_after(failures) == expected_wait


def test_one_warning_per_outage_then_again_only_after_warn_every(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    link = make_link(clock, first=0.0, longest=0.0)
    caplog.set_level(logging.INFO, logger=LOGGER)
    for _ in range(20):
        with pytest.raises(RedisUnavailable):
            link.call(refused)
        clock.now += 1.0
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    clock.now += 60.0
    with pytest.raises(RedisUnavailable):
        link.call(refused)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "still unavailable" in warnings[1].getMessage()
    link.call(answered)
    recovered = [r for r in caplog.records if r.levelno == logging.INFO]
    assert len(recovered) == 1
    assert "available again" in recovered[0].getMessage()


def test_log_messages_never_show_the_password(caplog: pytest.LogCaptureFixture) -> None:
    link = make_link(FakeClock())
    caplog.set_level(logging.INFO, logger=LOGGER)
    with pytest.raises(RedisUnavailable) as raised:
        link.call(refused)
    assert "secret" not in caplog.text
    assert "secret" not in str(raised.value)
    assert "secret" not in link.safe_url


def test_errors_that_are_not_redis_errors_propagate() -> None:
    link = make_link(FakeClock())

    def broken(_client: redis.Redis) -> None:
        raise KeyError("a bug in the action")

    with pytest.raises(KeyError):
        link.call(broken)
    assert not link.degraded
