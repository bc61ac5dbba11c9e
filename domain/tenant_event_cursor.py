"""Where a reader of the tenant-wide event stream stands: its SSE id, resumable without loss.

A session's events are numbered 1..n and are committed in that order (each takes the next seq
under the session row's lock), so a per-session seq is an exact cursor. A tenant's events have
no such number: the row id of `session_events` is global and, on PostgreSQL, a transaction may
commit a lower id after a higher one became visible. So the tenant-wide cursor is a vector:

- `anchor`: a row id; for a session not listed, the reader has exactly its events with row ids
  up to the anchor (none of its later ones);
- `seqs`: per listed session, the last seq the reader has (all before it, none after).

Written as the SSE id ``<anchor>`` or ``<anchor>~<session>:<seq>,<session>:<seq>`` (session ids
use neither ``~``, ``:`` nor ``,``). A reader that connects without one starts at the tenant's
newest row id, with no session listed. A session enters the list when one of its events is
delivered; `advance` moves the anchor up to a row id every event below which is known to be
visible (the stream's horizon) and drops the sessions whose listed seq is exactly what the
anchor now says, which keeps the id short.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from domain.errors import InvalidInput

MAX_ID_LENGTH = 8000
_SESSION = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")
_COUNT = re.compile(r"^[0-9]{1,18}$")


@dataclass
class TenantEventCursor:
    anchor: int
    seqs: dict[str, int] = field(default_factory=dict)  # insertion order: least recent first

    def listed(self, session_id: str) -> int | None:
        """The last seq the reader has of a listed session; None when it is not listed."""
        return self.seqs.get(session_id)

    def delivered(self, session_id: str, seq: int) -> None:
        self.seqs.pop(session_id, None)
        self.seqs[session_id] = seq

    def advance(self, anchor: int, seqs_at_anchor: dict[str, int]) -> None:
        """Move the anchor to `anchor`, given each listed session's newest seq up to it."""
        if anchor <= self.anchor:
            return
        self.anchor = anchor
        for session_id, seq in seqs_at_anchor.items():
            if self.seqs.get(session_id) == seq:
                del self.seqs[session_id]

    def format(self) -> str:
        if not self.seqs:
            return str(self.anchor)
        listed = ",".join(f"{session_id}:{seq}" for session_id, seq in self.seqs.items())
        return f"{self.anchor}~{listed}"

    @classmethod
    def parse(cls, text: str) -> TenantEventCursor:
        """The cursor an SSE id names; `InvalidInput` (field ``Last-Event-ID``) when malformed."""
        if len(text) > MAX_ID_LENGTH:
            raise InvalidInput("Last-Event-ID", f"longer than {MAX_ID_LENGTH} characters")
        anchor_text, tilde, listed = text.strip().partition("~")
        anchor = _count(anchor_text)
        if tilde and not listed:
            raise InvalidInput("Last-Event-ID", "no session listed after '~'")
        seqs: dict[str, int] = {}
        for item in listed.split(",") if listed else []:
            session_id, colon, seq_text = item.partition(":")
            if not colon or not _SESSION.fullmatch(session_id):
                raise InvalidInput("Last-Event-ID", f"{item[:40]!r} is not <session>:<seq>")
            seqs[session_id] = _count(seq_text)
        return cls(anchor, seqs)


def parse_session_event_id(text: str) -> int:
    """A session stream's SSE id: the seq of the last event the reader has."""
    return _count(text.strip())


def _count(text: str) -> int:
    if not _COUNT.fullmatch(text):
        raise InvalidInput("Last-Event-ID", f"{text[:40]!r} is not a non-negative integer")
    return int(text)
