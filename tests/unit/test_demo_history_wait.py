"""The demo's wait for its history sessions follows the work: it goes on while sessions keep
completing (a loaded machine is slower, not stuck) and gives up only after a stall."""

from __future__ import annotations

from indorch.demo.recurring_questions import follow_progress


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_the_wait_outlasts_its_stall_time_while_sessions_keep_completing() -> None:
    clock = Clock()
    # One more session done every 30 s: 48 of them take 24 minutes, far past a 240 s stall time.
    done = follow_progress(
        lambda: int(clock.now // 30), 48, lambda _: None, 240, clock, clock.sleep
    )
    assert done == 48
    assert clock.now >= 48 * 30


def test_the_wait_gives_up_after_a_stall() -> None:
    clock = Clock()
    counts = lambda: min(int(clock.now // 10), 22)  # noqa: E731 - 22 done, then nothing more
    done = follow_progress(counts, 48, lambda _: None, 240, clock, clock.sleep)
    assert done == 22
    assert 220 + 240 <= clock.now <= 220 + 240 + 10
