"""The tenant stream's SSE id: written and read back the same; anything else is refused."""

from __future__ import annotations

import pytest

from domain.errors import InvalidInput
from domain.tenant_event_cursor import TenantEventCursor, parse_session_event_id


def test_a_cursor_reads_back_as_it_was_written() -> None:
    cursor = TenantEventCursor(41)
    assert cursor.format() == "41"
    cursor.delivered("SESSION-a", 3)
    cursor.delivered("SESSION-b", 1)
    cursor.delivered("SESSION-a", 4)  # the most recent last
    assert cursor.format() == "41~SESSION-b:1,SESSION-a:4"
    assert TenantEventCursor.parse(cursor.format()) == cursor


def test_advancing_drops_the_sessions_the_new_anchor_accounts_for() -> None:
    cursor = TenantEventCursor(10, {"S-a": 4, "S-b": 7})
    cursor.advance(20, {"S-a": 4, "S-b": 6})  # b's 7th event lies above row 20
    assert cursor == TenantEventCursor(20, {"S-b": 7})
    cursor.advance(15, {"S-b": 7})  # never backwards
    assert cursor == TenantEventCursor(20, {"S-b": 7})


@pytest.mark.parametrize(
    "text",
    ["", "x", "-1", "1.5", "٣", "12~", "12~S-a", "12~S-a:x", "12~a b:1", "1" * 19, "9" * 9000],
)
def test_a_malformed_id_is_refused_naming_the_header(text: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        TenantEventCursor.parse(text)
    assert refused.value.field == "Last-Event-ID"


def test_a_session_id_is_its_seq() -> None:
    assert parse_session_event_id("17") == 17
    for text in ["", "-3", "seven", "٣"]:
        with pytest.raises(InvalidInput):
            parse_session_event_id(text)
