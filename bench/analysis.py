"""From what a scenario left behind to its figures: throughput, latency, sessions in flight.

Orchestrated scenarios are read from the application database after the fact (the conductor
does it, outside the measured processes): a session's submit time is its `created_at`, its
prompt-delivered time the `agent.prompted` event; between them, the instants it was claimed
(QUEUED), routed to an agent (`session.routed`) and created there (RUNNING), the stages of
`latency_stages`. Sessions in flight are counted three ways: held (from the start of the
first wave run holding it, per the Dagster instance's run records, to its end: the denominator
of memory per in-flight session), on agents (RUNNING: the agent session exists) and claimed
(QUEUED and after).
The floor reports the same instants itself (in flight: while it holds a slot on its server).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import dagster as dg
from sqlalchemy import select

from resources.database import Database
from resources.database.schema import SessionEventRow, SessionRow
from services.waves import WAVE_OP

ENDED = {
    "COMPLETED",
    "PARTIALLY_COMPLETED",
    "FAILED",
    "TIMEOUT",
    "STOPPED",
    "CANCELLED",
    "ORPHANED",
}


@dataclass
class Timeline:
    """One session's instants (epoch seconds; 0 when it never got there)."""

    submitted: float
    session_id: str = ""
    held: float = 0.0  # a live wave run first held it (its run started); the floor: got a slot
    claimed: float = 0.0  # taken by a wave (QUEUED); the floor: got a slot on its server
    routed: float = 0.0  # an agent chosen, its link ready; the floor: got a slot
    prompted: float = 0.0
    running: float = 0.0
    ended: float = 0.0
    status: str = ""
    retries: int = 0
    failures: list[str] = field(default_factory=list)  # why attempts ended other than COMPLETED


def percentile(values: Iterable[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None for no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    position = (len(ordered) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def max_overlap(intervals: Iterable[tuple[float, float, int]]) -> tuple[int, float]:
    """The largest total weight of intervals (start, end, weight) open at one instant, and when."""
    points: list[tuple[float, int]] = []
    for start, end, weight in intervals:
        points += [(start, weight), (end, -weight)]
    points.sort(key=lambda point: (point[0], point[1]))  # ends before starts at a tie
    best, best_at, open_now = 0, 0.0, 0
    for at, step in points:
        open_now += step
        if open_now > best:
            best, best_at = open_now, at
    return best, best_at


def wave_runs(dagster_home: Path) -> list[tuple[float, float, list[str]]]:
    """Each wave run of the scenario's Dagster instance: (start, end, the sessions it held)."""
    instance = dg.DagsterInstance.from_config(str(dagster_home))
    try:
        out = []
        for record in instance.get_run_records():
            config = record.dagster_run.run_config.get("ops", {}).get(WAVE_OP, {})
            sessions = list(config.get("config", {}).get("session_ids", []))
            if sessions and record.start_time:
                out.append((record.start_time, record.end_time or time.time(), sessions))
        return out
    finally:
        instance.dispose()


def held_since(runs: list[tuple[float, float, list[str]]]) -> dict[str, float]:
    """When a live wave run first held each session (the start of its first run)."""
    since: dict[str, float] = {}
    for start, _end, sessions in runs:
        for session_id in sessions:
            since[session_id] = min(start, since.get(session_id, start))
    return since


def _epoch(value: datetime | None) -> float:
    return value.timestamp() if value is not None else 0.0


def orchestrated_timelines(url: str) -> list[Timeline]:
    database = Database(url, app_role=None)
    try:
        with database.transaction() as session:
            rows = session.execute(
                select(
                    SessionRow.id, SessionRow.status, SessionRow.created_at, SessionRow.retry_count
                )
            ).all()
            events = session.execute(
                select(
                    SessionEventRow.session_id,
                    SessionEventRow.event_type,
                    SessionEventRow.new_status,
                    SessionEventRow.reason,
                    SessionEventRow.created_at,
                ).order_by(SessionEventRow.id)
            ).all()
    finally:
        database.dispose()
    timelines = {
        row.id: Timeline(_epoch(row.created_at), row.id, status=row.status, retries=row.retry_count)
        for row in rows
    }
    for event in events:
        line = timelines[event.session_id]
        at = _epoch(event.created_at)
        if event.event_type == "agent.prompted" and not line.prompted:
            line.prompted = at
        elif event.event_type == "session.routed" and not line.routed:
            line.routed = at
        elif event.new_status == "QUEUED" and not line.claimed:
            line.claimed = at
        elif event.new_status == "RUNNING" and not line.running:
            line.running = at
        elif event.new_status in ENDED:
            line.ended = at  # the last one: a retried session ends with its last attempt
            if event.new_status != "COMPLETED":
                line.failures.append(f"{event.new_status}: {event.reason}"[:120])
    return list(timelines.values())


def floor_timelines(records: list[dict[str, Any]]) -> list[Timeline]:
    return [
        Timeline(
            submitted=record["submitted_at"],
            held=record["started_at"],
            claimed=record["started_at"],
            routed=record["started_at"],
            prompted=record["prompted_at"],
            running=record["started_at"] if record["prompted_at"] else 0.0,
            ended=record["done_at"],
            status="COMPLETED" if record["ok"] else f"FAILED {record['error']}",
        )
        for record in records
    ]


# Where submit -> prompt goes, stage by stage (the floor: waiting for a slot on its server, then
# nothing until "running", which is the slot too, then the create and the prompt).
STAGES = (
    ("submit_to_claim", "submitted", "claimed"),  # the dispatch tick, or a wave's top-up
    ("claim_to_routed", "claimed", "routed"),  # the run's launch and start, the agent links
    ("routed_to_running", "routed", "running"),  # start pacing, then the agent session created
    ("running_to_prompted", "running", "prompted"),  # the prompt sent
)


def latency_stages(timelines: list[Timeline]) -> dict[str, dict[str, float | None]]:
    """p50 and p95 of each stage over the sessions prompted (stage percentiles do not add up
    to the total's: the slowest sessions are not the slowest in every stage)."""
    stages: dict[str, dict[str, float | None]] = {}
    for name, start, end in STAGES:
        values = [
            getattr(t, end) - getattr(t, start)
            for t in timelines
            if t.prompted and getattr(t, start) and getattr(t, end)
        ]
        stages[name] = {
            "p50": _round(percentile(values, 0.5)),
            "p95": _round(percentile(values, 0.95)),
        }
    return stages


def session_figures(
    timelines: list[Timeline], runs: list[tuple[float, float, list[str]]] | None = None
) -> dict[str, Any]:
    """`runs`: the wave runs (start, end, session ids); None for the floor, whose sessions are
    in flight while they hold a slot on their server."""
    if runs is not None:
        since = held_since(runs)
        for line in timelines:
            # Not in any run's config: claimed by a live wave's top-up, held from its claim.
            line.held = since.get(line.session_id, line.claimed)
    completed = [t for t in timelines if t.status == "COMPLETED"]
    first = min((t.submitted for t in timelines), default=0.0)
    last = max((t.ended for t in timelines if t.ended), default=first)
    wall = max(last - first, 1e-9)
    latencies = [t.prompted - t.submitted for t in timelines if t.prompted]
    durations = [t.ended - t.submitted for t in completed if t.ended]
    # In flight: from the start of the first wave run that held it (the memory supervising it
    # exists) to its end, retries' backoff included; on agents: its agent session exists
    # (RUNNING .. end); claimed: taken by a wave (QUEUED .. end, waiting for its run included).
    in_flight, at = max_overlap((t.held, t.ended or last, 1) for t in timelines if t.held)
    on_agents, _ = max_overlap((t.running, t.ended or last, 1) for t in timelines if t.running)
    claimed, _ = max_overlap((t.claimed, t.ended or last, 1) for t in timelines if t.claimed)
    failures: dict[str, int] = {}
    for line in timelines:
        for reason in line.failures:
            failures[reason] = failures.get(reason, 0) + 1
    statuses: dict[str, int] = {}
    for line in timelines:
        key = line.status.split(" ", 1)[0]
        statuses[key] = statuses.get(key, 0) + 1
    return {
        "sessions": len(timelines),
        "completed": len(completed),
        "retried": sum(1 for t in timelines if t.retries),
        "statuses": statuses,
        "attempt_failures": failures,
        "first_submit": first,
        "last_end": last,
        "wall_seconds": round(wall, 2),
        "sessions_per_minute": round(len(completed) / wall * 60, 1),
        "latency_p50_s": _round(percentile(latencies, 0.5)),
        "latency_p95_s": _round(percentile(latencies, 0.95)),
        "latency_stages_s": latency_stages(timelines),
        "duration_p50_s": _round(percentile(durations, 0.5)),
        "max_in_flight": in_flight,
        "max_in_flight_at": at,
        "max_on_agents": on_agents,
        "max_claimed": claimed,
    }


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)
