"""Retries are bounded, go through `Session.retry()`, and wait an exponential, jittered delay.

FAILED, TIMEOUT and ORPHANED sessions go back to PENDING with the retry counted and the next
attempt scheduled; once `max_retries` are used the session stays where it is. `RetryPolicy`
delays double up to a cap and are jittered down by at most `jitter`; a bad policy is refused with
`InvalidInput`, like every other broken rule.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.errors import InvalidInput, InvalidTransition, RetriesExhausted
from domain.retry import RetryPolicy
from domain.session import Session, SessionStatus

AT = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
RETRYABLE = [SessionStatus.FAILED, SessionStatus.TIMEOUT, SessionStatus.ORPHANED]


def make_session(status: SessionStatus, **overrides: object) -> Session:
    return Session(
        tenant_id="acme", title="fix the build", initial_prompt="go", status=status, **overrides
    )


@pytest.mark.parametrize("status", RETRYABLE)
def test_retry_puts_the_session_back_to_pending_and_schedules_the_next_attempt(
    status: SessionStatus,
) -> None:
    session = make_session(status)

    event = session.retry(at=AT, rng=random.Random(7), reason="sensor retry")

    assert session.status is SessionStatus.PENDING
    assert session.retry_count == 1
    assert session.metrics.retries == 1
    # The default policy: base 5 s, jitter 0.5, so the first retry waits 2.5-5 s.
    assert session.next_attempt_at is not None
    assert AT + timedelta(seconds=2.5) <= session.next_attempt_at <= AT + timedelta(seconds=5)
    assert (event.old_status, event.new_status) == (status.value, "PENDING")
    assert event.reason == "sensor retry"
    assert event.at == AT
    assert event.data == {"retry": 1, "next_attempt_at": session.next_attempt_at.isoformat()}


@pytest.mark.parametrize("status", RETRYABLE)
def test_transition_to_pending_from_a_retryable_state_is_refused(status: SessionStatus) -> None:
    session = make_session(status)
    before = session.model_dump()

    with pytest.raises(InvalidTransition, match=f"{status.value} -> PENDING"):
        session.transition_to(SessionStatus.PENDING)

    assert session.model_dump() == before


@pytest.mark.parametrize(
    "status",
    [
        # Not yet run: nothing to retry.
        SessionStatus.PENDING,
        # Still running.
        SessionStatus.RUNNING,
        # Final states never move, not even by a retry.
        SessionStatus.COMPLETED,
        SessionStatus.CANCELLED,
    ],
)
def test_retry_from_a_state_that_is_not_retryable_is_refused(status: SessionStatus) -> None:
    session = make_session(status)
    with pytest.raises(InvalidTransition, match=f"{status.value} -> PENDING"):
        session.retry(at=AT)
    assert (session.status, session.retry_count) == (status, 0)


def test_a_session_that_used_its_retries_stays_failed() -> None:
    session = make_session(SessionStatus.PENDING, max_retries=3)
    for attempt in range(1, 4):
        session.transition_to(SessionStatus.RUNNING, at=AT)
        session.transition_to(SessionStatus.FAILED, at=AT)
        session.retry(at=AT)
        assert session.retry_count == attempt
    session.transition_to(SessionStatus.RUNNING, at=AT)
    session.transition_to(SessionStatus.FAILED, at=AT)
    before = session.model_dump()

    with pytest.raises(RetriesExhausted, match="all 3 retries") as exhausted:
        session.retry(at=AT)

    assert (exhausted.value.entity_id, exhausted.value.max_retries) == (session.id, 3)
    assert session.status is SessionStatus.FAILED
    assert session.model_dump() == before


def test_max_retries_zero_never_retries() -> None:
    session = make_session(SessionStatus.FAILED, max_retries=0)
    with pytest.raises(RetriesExhausted):
        session.retry(at=AT)
    assert (session.status, session.retry_count) == (SessionStatus.FAILED, 0)


def test_successive_retries_back_off_exponentially() -> None:
    policy = RetryPolicy(base_delay_seconds=5, max_delay_seconds=300, jitter=0)
    session = make_session(SessionStatus.FAILED, max_retries=3)
    waits = []
    for _ in range(3):
        session.retry(policy=policy, at=AT)
        assert session.next_attempt_at is not None
        waits.append((session.next_attempt_at - AT).total_seconds())
        session.transition_to(SessionStatus.FAILED, at=AT)
    assert waits == [5, 10, 20]


@pytest.mark.parametrize(
    ("attempt", "ceiling"),
    [
        # The first retry waits the base delay.
        (1, 5.0),
        # Then it doubles ...
        (2, 10.0),
        (3, 20.0),
        (6, 160.0),
        # ... until the cap: 5 * 2**6 = 320 > 300.
        (7, 300.0),
        (20, 300.0),
        # A huge attempt number stays at the cap instead of overflowing a float.
        (5_000, 300.0),
    ],
)
def test_policy_ceiling_doubles_and_caps(attempt: int, ceiling: float) -> None:
    assert RetryPolicy(base_delay_seconds=5, max_delay_seconds=300).ceiling(attempt) == ceiling


def test_policy_attempts_are_one_based() -> None:
    with pytest.raises(ValueError, match="1-based"):
        RetryPolicy().ceiling(0)


@settings(max_examples=200, deadline=None)
@given(
    attempt=st.integers(min_value=1, max_value=10_000),
    jitter=st.floats(min_value=0, max_value=1),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_policy_delay_stays_within_the_jitter_band(attempt: int, jitter: float, seed: int) -> None:
    policy = RetryPolicy(base_delay_seconds=1.5, max_delay_seconds=600, jitter=jitter)
    ceiling = policy.ceiling(attempt)

    delay = policy.delay(attempt, random.Random(seed)).total_seconds()

    # timedelta keeps microseconds, hence the microsecond of slack.
    assert ceiling * (1 - jitter) - 1e-6 <= delay <= ceiling + 1e-6
    assert ceiling <= 600


@settings(max_examples=50, deadline=None)
@given(attempt=st.integers(min_value=1, max_value=50), seed=st.integers(min_value=0))
def test_policy_without_jitter_waits_exactly_the_ceiling(attempt: int, seed: int) -> None:
    policy = RetryPolicy(base_delay_seconds=2, max_delay_seconds=1000, jitter=0)
    expected = timedelta(seconds=policy.ceiling(attempt))
    assert policy.delay(attempt, random.Random(seed)) == expected
    assert policy.next_attempt_at(AT, attempt, random.Random(seed)) == AT + expected


@pytest.mark.parametrize(
    ("used", "left"),
    [
        # Nothing used yet.
        (0, True),
        # One left.
        (2, True),
        # All three used.
        (3, False),
    ],
)
def test_policy_counts_retries_left(used: int, left: bool) -> None:
    assert RetryPolicy(max_retries=3).has_retries_left(used) is left


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        # The cap is below the base delay.
        ({"base_delay_seconds": 10, "max_delay_seconds": 5}, "RetryPolicy"),
        # A delay must be positive.
        ({"base_delay_seconds": 0}, "base_delay_seconds"),
        # Delays must not shrink.
        ({"multiplier": 0.5}, "multiplier"),
        # Jitter is a fraction.
        ({"jitter": 1.5}, "jitter"),
        ({"jitter": -0.1}, "jitter"),
        # A negative number of retries makes no sense ...
        ({"max_retries": -1}, "max_retries"),
        # ... nor does retrying forever.
        ({"max_retries": 21}, "max_retries"),
    ],
)
def test_bad_policies_are_refused_with_invalid_input(fields: dict[str, float], field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        RetryPolicy(**fields)
    assert refused.value.field == field


def test_a_policy_is_immutable() -> None:
    policy = RetryPolicy()
    with pytest.raises(InvalidInput):
        policy.jitter = 0  # type: ignore[misc]
