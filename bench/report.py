"""The bench's table and its comparisons (ratios within one run, and the issue's targets)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

# The targets at the default wave size.
TARGET_SPEEDUP_OVER_WAVE1 = 10.0
TARGET_SHARE_OF_FLOOR = 0.8
TARGET_CPU_PER_SESSION = 0.1
TARGET_MB_PER_IN_FLIGHT = 1.0
FLOOR_NAMES = {"floor": "floor", "floor_isolated": "isolated floor"}


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def one_line(s: dict[str, Any]) -> str:
    pushed = s.get("branches_pushed")
    return (
        f"  {s['label']}: {s['completed']}/{s['sessions']} completed, "
        + (f"{pushed} branches pushed, " if pushed is not None else "")
        + f"{s['sessions_per_minute']} sessions/min, latency p50 {s['latency_p50_s']} s / p95 "
        f"{s['latency_p95_s']} s, {s['cpu_seconds_per_session']} CPU-s/session, peak "
        f"{s['peak_rss_mb']} MB, {s['mb_per_in_flight_session']} MB per in-flight session "
        f"(max {s['max_in_flight']} in flight); latency stages p50/p95: "
        + ", ".join(
            f"{name} {_fmt(stage['p50'])}/{_fmt(stage['p95'])} s"
            for name, stage in (s.get("latency_stages_s") or {}).items()
        )
    )


def comparisons(results: list[dict[str, Any]]) -> dict[str, Any]:
    by_key = {s["key"]: s for s in results}
    out: dict[str, Any] = {}

    def ratio(a: str, b: str) -> float | None:
        if a in by_key and b in by_key and by_key[b]["sessions_per_minute"]:
            return round(by_key[a]["sessions_per_minute"] / by_key[b]["sessions_per_minute"], 2)
        return None

    # Their sessions each have a workspace of their own: the floor that does the same is theirs
    # (the unisolated floor's share is the cost of that isolation).
    floor = "floor_isolated" if "floor_isolated" in by_key else "floor"
    for key in ("wave", "worker", "runtime", "inprocess"):
        if key not in by_key:
            continue
        s = by_key[key]
        speedup, share = ratio(key, "wave1"), ratio(key, floor)
        floor_cpu = by_key[floor]["cpu_seconds_per_session"] if floor in by_key else None
        out[key] = {
            "speedup_over_wave1": speedup,
            "floor": floor,
            "share_of_floor": share,
            "share_of_unisolated_floor": ratio(key, "floor"),
            "throughput_target_met": bool(
                (speedup is not None and speedup >= TARGET_SPEEDUP_OVER_WAVE1)
                or (share is not None and share >= TARGET_SHARE_OF_FLOOR)
            ),
            "cpu_seconds_per_session": s["cpu_seconds_per_session"],
            "cpu_over_floor": (
                round(s["cpu_seconds_per_session"] / floor_cpu, 2) if floor_cpu else None
            ),
            "cpu_target_met": s["cpu_seconds_per_session"] <= TARGET_CPU_PER_SESSION,
            "mb_per_in_flight_session": s["mb_per_in_flight_session"],
            "memory_target_met": (s["mb_per_in_flight_session"] or 0) <= TARGET_MB_PER_IN_FLIGHT,
        }
    if "inflight" in by_key:
        s = by_key["inflight"]
        out["inflight"] = {
            "sessions": s["sessions"],
            "wave_size": s["wave_size"],
            "max_in_flight": s["max_in_flight"],
            "max_on_agents": s["max_on_agents"],
            "mb_per_in_flight_session": s["mb_per_in_flight_session"],
            "memory_target_met": (s["mb_per_in_flight_session"] or 0) <= TARGET_MB_PER_IN_FLIGHT,
            "cpu_seconds_per_session": s["cpu_seconds_per_session"],
            "cpu_target_met": s["cpu_seconds_per_session"] <= TARGET_CPU_PER_SESSION,
        }
    if "wave1" in by_key:
        s = by_key["wave1"]
        out["wave1"] = {
            "cpu_seconds_per_run": round(s["cpu_seconds"] / max(s["runs"] or 1, 1), 2),
            "share_of_floor": ratio("wave1", "floor"),
        }
    return out


def scenario_table(document: dict[str, Any]) -> Table:
    table = Table(title="Sessions: orchestrated vs direct (one run)", show_lines=False)
    for header in (
        "scenario",
        "sessions",
        "done",
        "retried",
        "sessions/min",
        "prompt p50 s",
        "prompt p95 s",
        "CPU-s/session",
        "peak RSS MB",
        "max in flight",
        "on agents",
        "MB/in-flight",
        "runs",
    ):
        table.add_column(header, justify="left" if header == "scenario" else "right")
    for s in document["scenarios"]:
        table.add_row(
            s["label"],
            _fmt(s["sessions"]),
            _fmt(s["completed"]),
            _fmt(s["retried"]) if s["mode"] != "floor" else "-",
            _fmt(s["sessions_per_minute"], 1),
            _fmt(s["latency_p50_s"]),
            _fmt(s["latency_p95_s"]),
            _fmt(s["cpu_seconds_per_session"], 3),
            _fmt(s["peak_rss_mb"], 0),
            _fmt(s["max_in_flight"]),
            _fmt(s["max_on_agents"]),
            _fmt(s["mb_per_in_flight_session"], 2),
            _fmt(s["runs"]),
        )
    return table


def comparison_table(document: dict[str, Any]) -> Table:
    table = Table(title="Against the targets (default wave size)")
    for header in ("figure", "measured", "target", "met"):
        table.add_column(header, justify="left" if header == "figure" else "right")
    c = document["comparisons"]
    labels = {"wave": "a process per run", "worker": "run worker", "inprocess": "in-process runs"}
    for key, label in labels.items():
        if key not in c:
            continue
        row = c[key]
        table.add_row(
            f"{label}: throughput vs wave size 1",
            f"{_fmt(row['speedup_over_wave1'])}x",
            f">= {TARGET_SPEEDUP_OVER_WAVE1:g}x",
            "",
        )
        table.add_row(
            f"{label}: throughput vs {FLOOR_NAMES[row['floor']]}",
            f"{_fmt(row['share_of_floor'])}",
            f">= {TARGET_SHARE_OF_FLOOR:g} (agent-bound)",
            _yes(row["throughput_target_met"]),
        )
        if row["floor"] != "floor":
            table.add_row(
                f"{label}: throughput vs the unisolated floor (cost of isolation)",
                f"{_fmt(row['share_of_unisolated_floor'])}",
                "",
                "",
            )
        table.add_row(
            f"{label}: CPU-s per session vs the {FLOOR_NAMES[row['floor']]}'s",
            f"{_fmt(row['cpu_over_floor'])}x",
            "",
            "",
        )
        table.add_row(
            f"{label}: CPU-s per session",
            _fmt(row["cpu_seconds_per_session"], 3),
            f"<= {TARGET_CPU_PER_SESSION:g}",
            _yes(row["cpu_target_met"]),
        )
        table.add_row(
            f"{label}: MB per in-flight session",
            _fmt(row["mb_per_in_flight_session"]),
            f"<= {TARGET_MB_PER_IN_FLIGHT:g}",
            _yes(row["memory_target_met"]),
        )
    if "inflight" in c:
        row = c["inflight"]
        table.add_row(
            f"in flight: max held by live runs (of {row['sessions']}, "
            f"wave size {row['wave_size']})",
            _fmt(row["max_in_flight"]),
            "",
            "",
        )
        table.add_row("in flight: max on agents at once", _fmt(row["max_on_agents"]), "", "")
        table.add_row(
            "in flight: MB per in-flight session",
            _fmt(row["mb_per_in_flight_session"]),
            f"<= {TARGET_MB_PER_IN_FLIGHT:g}",
            _yes(row["memory_target_met"]),
        )
        table.add_row(
            "in flight: CPU-s per session",
            _fmt(row["cpu_seconds_per_session"], 3),
            f"<= {TARGET_CPU_PER_SESSION:g}",
            _yes(row["cpu_target_met"]),
        )
    return table


def _yes(flag: bool) -> str:
    return "yes" if flag else "NO"


def print_tables(console: Console, document: dict[str, Any]) -> None:
    console.print(scenario_table(document))
    console.print(comparison_table(document))
