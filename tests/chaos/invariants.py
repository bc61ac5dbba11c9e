"""What the chaos suite checks, read from the sources of truth rather than from the product's own
bookkeeping where it can: the scripted model's request log (what the agents were really asked),
PostgreSQL as its superuser (every tenant's rows, row-level security bypassed), sampled while
the faults land.
"""

from __future__ import annotations

import re
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import psycopg

from standins import openai_chat
from standins.scripted_model import SESSION_HEADER, is_title_request

FINAL = frozenset({"COMPLETED", "PARTIALLY_COMPLETED", "STOPPED", "CANCELLED"})
RETRYABLE = frozenset({"FAILED", "TIMEOUT", "ORPHANED"})
ACTIVE = ("QUEUED", "RUNNING", "PAUSED", "DEGRADED")  # holding a concurrency slot
MARKER = re.compile(r"chaos-[a-z0-9-]+?-\d+\b")


@dataclass(frozen=True)
class SessionRow:
    id: str
    tenant: str
    status: str
    reason: str
    retry_count: int
    max_retries: int
    marker: str

    @property
    def settled(self) -> bool:
        """Ended for good: a final state, or a failure with no retry left."""
        return self.status in FINAL or (
            self.status in RETRYABLE and self.retry_count >= self.max_retries
        )


def read_sessions(connection: psycopg.Connection[Any]) -> list[SessionRow]:
    rows = connection.execute(
        "SELECT id, tenant_id, status, status_reason, retry_count, max_retries, initial_prompt "
        "FROM sessions ORDER BY created_at"
    ).fetchall()
    sessions = []
    for id_, tenant, status, reason, retries, max_retries, prompt in rows:
        found = MARKER.search(prompt or "")
        sessions.append(
            SessionRow(
                id_,
                tenant,
                status,
                reason or "",
                retries,
                max_retries,
                found.group(0) if found else "",
            )
        )
    return sessions


def event_sequence_faults(connection: psycopg.Connection[Any]) -> list[str]:
    """Sessions whose event numbers are not exactly 1..n, or whose counter disagrees with n."""
    rows = connection.execute(
        "SELECT s.id, s.last_event_seq, array_remove(array_agg(e.seq ORDER BY e.seq), NULL) "
        "FROM sessions s LEFT JOIN session_events e ON e.session_id = s.id GROUP BY s.id"
    ).fetchall()
    faults = []
    for session_id, last_seq, seqs in rows:
        if list(seqs) != list(range(1, len(seqs) + 1)) or last_seq != len(seqs):
            faults.append(f"{session_id}: seqs {seqs}, last_event_seq {last_seq}")
    return faults


@dataclass
class PromptDeliveries:
    """Per marker (one submitted session), the agent sessions it was delivered to and how many
    user messages each of them ever held (a prompt delivered twice shows as two)."""

    by_marker: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))

    @classmethod
    def from_requests(cls, requests: list[dict[str, Any]]) -> PromptDeliveries:
        deliveries = cls()
        for request in requests:
            body = request.get("body") or {}
            messages = body.get("messages") or []
            if not messages or is_title_request(messages):
                continue
            found = MARKER.search(openai_chat.first_user_text(messages))
            if found is None:
                continue
            agent_session = request["headers"].get(SESSION_HEADER, f"request-{request['index']}")
            users = sum(1 for message in messages if message.get("role") == "user")
            seen = deliveries.by_marker[found.group(0)]
            seen[agent_session] = max(seen.get(agent_session, 0), users)
        return deliveries

    def duplicates(self, attempts_by_marker: dict[str, int]) -> list[str]:
        """A prompt sent twice into one agent session, or more agent sessions than attempts."""
        found = []
        for marker, sessions in self.by_marker.items():
            for agent_session, users in sessions.items():
                if users > 1:
                    found.append(f"{marker}: {users} prompts in agent session {agent_session}")
            attempts = attempts_by_marker.get(marker, 0)
            if len(sessions) > attempts:
                found.append(f"{marker}: {len(sessions)} agent sessions for {attempts} attempts")
        return found


class ConcurrencySampler(threading.Thread):
    """Every `every` seconds, the sessions holding a slot per tenant; the maximum seen and every
    sample over the tenant's limit. A sample that fails (PostgreSQL restarting) is skipped."""

    def __init__(self, dsn: str, limits: dict[str, int], every: float = 0.5) -> None:
        super().__init__(name="concurrency-sampler", daemon=True)
        self.dsn = dsn
        self.limits = limits
        self.every = every
        self.samples = 0
        self.failed_samples = 0
        self.max_seen: dict[str, int] = dict.fromkeys(limits, 0)
        self.over_limit: list[str] = []
        self._stopping = threading.Event()

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self.dsn, connect_timeout=2) as connection:
                    rows = connection.execute(
                        "SELECT tenant_id, count(*) FROM sessions WHERE status = ANY(%s) "
                        "GROUP BY tenant_id",
                        (list(ACTIVE),),
                    ).fetchall()
                self.samples += 1
                for tenant, count in rows:
                    self.max_seen[tenant] = max(self.max_seen.get(tenant, 0), count)
                    if count > self.limits.get(tenant, 0):
                        self.over_limit.append(f"{time.time():.1f} {tenant}: {count}")
            except psycopg.Error:
                self.failed_samples += 1
            self._stopping.wait(self.every)

    def stop(self) -> None:
        self._stopping.set()
        self.join(timeout=10)
