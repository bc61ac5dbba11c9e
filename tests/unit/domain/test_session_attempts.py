"""A session's current error is its current attempt's; ended attempts keep theirs in its history.

A retry moves the failed attempt (number, status, reason, error, end) into `metadata["attempts"]`
and clears `error`, so a session that completes on a later attempt shows no error; completing
clears any error left over. Steering a session in a status that does not allow it says which
status would.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from domain.errors import InvalidTransition, NotAllowedInStatus
from domain.session import Session, SessionStatus

S = SessionStatus
AT = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def new_session(max_retries: int = 3) -> Session:
    return Session(
        tenant_id="acme", title="fix the build", initial_prompt="go", max_retries=max_retries
    )


def fail_attempt(session: Session, at: datetime, why: str, status: S = S.FAILED) -> None:
    """One attempt that runs and fails as the supervisor records it: error, then the state."""
    session.transition_to(S.RUNNING, "started", at=at)
    session.error = {"reason": why}
    session.transition_to(status, why, at=at + MINUTE)


def test_a_retry_moves_the_failed_attempts_error_into_the_history() -> None:
    session = new_session()
    fail_attempt(session, AT, "agent server lost")

    event = session.retry(at=AT + 2 * MINUTE, rng=random.Random(1))

    assert session.error is None
    assert session.metadata["attempts"] == [
        {
            "attempt": 1,
            "status": "FAILED",
            "reason": "agent server lost",
            "error": {"reason": "agent server lost"},
            "ended_at": (AT + MINUTE).isoformat(),
        }
    ]
    assert event.data["error"] == {"reason": "agent server lost"}


def test_a_session_that_completes_on_a_later_attempt_has_no_current_error() -> None:
    session = new_session()
    fail_attempt(session, AT, "boom")
    session.retry(at=AT + 2 * MINUTE)
    fail_attempt(session, AT + 3 * MINUTE, "deadline passed", status=S.TIMEOUT)
    session.retry(at=AT + 5 * MINUTE)

    session.transition_to(S.RUNNING, at=AT + 6 * MINUTE)
    session.transition_to(S.COMPLETED, "agent finished", at=AT + 7 * MINUTE)

    assert session.error is None
    history = [(a["attempt"], a["status"], a["error"]) for a in session.metadata["attempts"]]
    assert history == [
        (1, "FAILED", {"reason": "boom"}),
        (2, "TIMEOUT", {"reason": "deadline passed"}),
    ]


def test_completing_clears_an_error_left_over() -> None:
    session = new_session()
    session.transition_to(S.RUNNING, at=AT)
    session.error = {"reason": "a transient agent error"}
    session.transition_to(S.COMPLETED, "agent finished", at=AT + MINUTE)
    assert session.error is None


def test_the_last_attempts_error_stays_current_when_no_retry_is_left() -> None:
    session = new_session(max_retries=1)
    fail_attempt(session, AT, "first")
    session.retry(at=AT + 2 * MINUTE)
    fail_attempt(session, AT + 3 * MINUTE, "second")

    assert not session.can_retry
    assert session.error == {"reason": "second"}
    assert [a["error"] for a in session.metadata["attempts"]] == [{"reason": "first"}]


def test_other_metadata_is_kept_by_a_retry() -> None:
    session = new_session()
    session.metadata = {"subtask": "0"}
    fail_attempt(session, AT, "boom")
    session.retry(at=AT + 2 * MINUTE)
    assert session.metadata["subtask"] == "0"


@pytest.mark.parametrize(
    ("status", "allowed", "action", "message"),
    [
        (S.PENDING, {S.PAUSED}, "resumed", "is PENDING: only a PAUSED session can be resumed"),
        (S.PAUSED, {S.RUNNING}, "paused", "is PAUSED: only a RUNNING session can be paused"),
        (
            S.QUEUED,
            {S.RUNNING, S.DEGRADED, S.PAUSED},
            "stopped",
            "is QUEUED: only a RUNNING, PAUSED or DEGRADED session can be stopped",
        ),
    ],
)
def test_steering_in_a_status_that_does_not_allow_it_says_which_would(
    status: S, allowed: set[S], action: str, message: str
) -> None:
    session = Session(tenant_id="acme", title="t", initial_prompt="go", status=status)
    with pytest.raises(NotAllowedInStatus) as refused:
        session.require_status(allowed, action, S.RUNNING)
    assert str(refused.value) == f"session {session.id!r} {message}"
    assert isinstance(refused.value, InvalidTransition)
    assert (refused.value.key, refused.value.current) == (session.id, status.value)


def test_a_status_that_allows_the_action_passes() -> None:
    session = Session(tenant_id="acme", title="t", initial_prompt="go", status=S.PAUSED)
    session.require_status({S.PAUSED}, "resumed", S.RUNNING)
