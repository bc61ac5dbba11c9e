"""A session no agent of its tenant can serve (it needs a capability none offers) waits
PENDING, marked once with the reason, and ends FAILED after a bounded wait without a retry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.errors import InvalidTransition
from domain.routing import unserved_reason
from domain.session import Session, SessionStatus

AT = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def make_session(status: SessionStatus = SessionStatus.PENDING, **overrides: object) -> Session:
    return Session(
        tenant_id="acme",
        title="port it",
        initial_prompt="go",
        status=status,
        required_capabilities=["rust"],
        **overrides,
    )


@pytest.mark.parametrize(
    ("required", "offered", "expected"),
    [
        (["rust"], [["python"]], "no agent offers rust"),
        (["rust"], [], "no agent offers rust"),
        (["Rust", "go"], [["python"], ["go"]], "no agent offers rust"),
        (["rust", "go"], [["rust"], ["go"]], "no agent offers go and rust together"),
        (["RUST"], [["python"], ["rust", "go"]], None),
        # nothing required: any agent will do, and waiting for one is routing's business
        ([], [], None),
    ],
)
def test_the_reason_names_what_no_single_agent_offers(
    required: list[str], offered: list[list[str]], expected: str | None
) -> None:
    assert unserved_reason(required, offered) == expected


def test_marking_a_session_unroutable_records_the_reason_once() -> None:
    session = make_session()

    assert session.mark_unroutable("no agent offers rust", AT) is True
    assert session.mark_unroutable("no agent offers rust", AT + timedelta(seconds=5)) is False

    assert session.status is SessionStatus.PENDING
    assert session.status_reason == "no agent offers rust"
    assert session.unroutable_since == AT


def test_a_routable_session_again_forgets_when_it_became_unroutable() -> None:
    session = make_session()
    session.mark_unroutable("no agent offers rust", AT)

    session.clear_unroutable("an agent offers rust now")

    assert session.unroutable_since is None
    assert session.status_reason == "an agent offers rust now"


def test_an_unroutable_session_fails_for_good_not_into_a_retry() -> None:
    session = make_session(max_retries=3)
    session.mark_unroutable("no agent offers rust", AT)

    event = session.fail_unroutable("no agent offers rust", AT + timedelta(minutes=10))

    assert (event.old_status, event.new_status) == ("PENDING", "FAILED")
    assert session.status_reason == "no agent offers rust"
    assert session.error == {"reason": "no agent offers rust", "retryable": False}
    assert not session.can_retry
    assert session.settled
    # Its retries count as spent: the retry sensor's finder (retry_count < max_retries) skips it.
    assert session.retry_count == session.max_retries == 0


def test_a_claimed_session_handed_back_as_unroutable_is_pending_and_marked() -> None:
    session = make_session(SessionStatus.QUEUED, lease_owner="wave-1", lease_expires_at=AT)

    event = session.release_unroutable("no agent offers rust", AT)

    assert (event.old_status, event.new_status) == ("QUEUED", "PENDING")
    assert session.status is SessionStatus.PENDING
    assert session.lease_owner is None and session.lease_expires_at is None
    assert session.unroutable_since == AT
    assert session.status_reason == "no agent offers rust"
    assert session.retry_count == 0


def test_only_a_claimed_session_can_be_handed_back() -> None:
    with pytest.raises(InvalidTransition):
        make_session(SessionStatus.RUNNING).release_unroutable("no agent offers rust", AT)
