"""One benchmark report from the session, learning-loop and API benches' results documents.

Pure: each figure is read from a bench's own document, set beside its baseline measured in the
same run (for sessions the isolated floor when it ran, else the direct one; the stand-in
provider's own phases for fine-tuning, `GET /health/live` through the same server for
submissions), and checked against its issue's target. `python -m bench` runs the benches and
renders what this assembles.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from rich.table import Table

from bench import report as sessions_report

# Targets the issues set beside those `bench.report` holds for the sessions bench.
LATENCY_P50_OVER_FLOOR_S = 1.0  # issue 9: p50 <= floor + 1 s
LATENCY_P95_OVER_FLOOR_S = 3.0  # issue 9: p95 <= floor + 3 s
CPU_TIMES_FLOOR = 1.5  # issue 9: <= 1.5x the floor's CPU per session
FLOOR_LABELS = {
    "floor": "floor: direct agent calls",
    "floor_isolated": "isolated floor: direct agent calls, a scratch directory each",
}
API_PER_SECOND = 300.0  # issue 12
API_P95_MS = 50.0  # issue 12
EVENTS_P95_MS = 250.0  # issue 12, at 1,000 readers
STAND_IN_PHASES = 3  # validating_files, queued, running: each lasts at least step_seconds


@dataclass(frozen=True)
class Figure:
    """One row: a measured value, its same-run baseline and ratio, the issue's target."""

    bench: str
    name: str
    value: float | None
    unit: str
    baseline_name: str = ""
    baseline: float | None = None
    target: str = ""
    met: bool | None = None
    command: str = ""

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.baseline:
            return None
        return round(self.value / self.baseline, 2)


def session_figures(document: dict[str, Any]) -> list[Figure]:
    """The run worker's row (the embedded default) against the floor and one run per session."""
    by_key = {s["key"]: s for s in document["scenarios"]}
    command = document["command"]
    naive, worker = by_key.get("wave1"), by_key.get("worker")
    # The default configuration's sessions each have a directory of their own: the floor doing
    # the same is theirs when it ran (`bench.report`).
    floor_key = "floor_isolated" if "floor_isolated" in by_key else "floor"
    floor, direct = by_key.get(floor_key), by_key.get("floor")  # memory: beside the direct one
    floor_name = FLOOR_LABELS[floor_key]
    figures: list[Figure] = []
    if worker is not None:
        rate = worker["sessions_per_minute"]
        share = _ratio(rate, floor and floor["sessions_per_minute"])
        speedup = _ratio(rate, naive and naive["sessions_per_minute"])
        throughput_met = bool(
            (share is not None and share >= sessions_report.TARGET_SHARE_OF_FLOOR)
            or (speedup is not None and speedup >= sessions_report.TARGET_SPEEDUP_OVER_WAVE1)
        )
        either = (
            f">= {sessions_report.TARGET_SHARE_OF_FLOOR:g}x floor or "
            f">= {sessions_report.TARGET_SPEEDUP_OVER_WAVE1:g}x wave size 1 (issue 3)"
        )
        row = f"sessions, run worker, wave size {worker['wave_size']}"
        figures += [
            _completion_figure(row, worker, command),
            Figure(
                "sessions",
                f"{row}: sessions/min",
                rate,
                "/min",
                floor_name,
                floor and floor["sessions_per_minute"],
                either,
                throughput_met,
                command,
            ),
            Figure(
                "sessions",
                f"{row}: sessions/min vs one run per session",
                rate,
                "/min",
                "wave size 1: a run per session",
                naive and naive["sessions_per_minute"],
                either,
                throughput_met,
                command,
            ),
        ]
        for quantile, over in (
            ("p50", LATENCY_P50_OVER_FLOOR_S),
            ("p95", LATENCY_P95_OVER_FLOOR_S),
        ):
            value, base = worker[f"latency_{quantile}_s"], floor and floor[f"latency_{quantile}_s"]
            figures.append(
                Figure(
                    "sessions",
                    f"{row}: submit -> prompt {quantile}",
                    value,
                    "s",
                    floor_name,
                    base,
                    f"<= floor + {over:g} s (issue 9)",
                    None if value is None or base is None else value <= base + over,
                    command,
                )
            )
        cpu, floor_cpu = (
            worker["cpu_seconds_per_session"],
            floor and floor["cpu_seconds_per_session"],
        )
        figures += [
            Figure(
                "sessions",
                f"{row}: control-plane CPU-s / session",
                cpu,
                "s",
                floor_name,
                floor_cpu,
                f"<= {sessions_report.TARGET_CPU_PER_SESSION:g} s (issue 3)",
                cpu <= sessions_report.TARGET_CPU_PER_SESSION,
                command,
            ),
            Figure(
                "sessions",
                f"{row}: control-plane CPU-s / session vs floor",
                cpu,
                "s",
                floor_name,
                floor_cpu,
                f"<= {CPU_TIMES_FLOOR:g}x floor (issue 9)",
                None if not floor_cpu else cpu <= CPU_TIMES_FLOOR * floor_cpu,
                command,
            ),
            _memory_figure(f"{row}: MB / in-flight session", worker, direct, command),
        ]
    held = by_key.get("inflight")
    if held is not None:
        row = (
            f"sessions, {held['sessions']:,} held at once (max {held['max_in_flight']:,} in flight)"
        )
        figures += [
            _completion_figure(row, held, command),
            _memory_figure(f"{row}: MB / in-flight session", held, direct, command),
        ]
    return figures


def _completion_figure(row: str, scenario: dict[str, Any], command: str) -> Figure:
    """Whether the row's figures cover every session: a timed-out row measured fewer."""
    ended = ", timed out" if scenario.get("timed_out") else ""
    return Figure(
        "sessions",
        f"{row}: sessions completed ({scenario['retried']} retried{ended})",
        scenario["completed"],
        "",
        "submitted",
        scenario["sessions"],
        "all",
        scenario["completed"] == scenario["sessions"],
        command,
    )


def _memory_figure(
    name: str, row: dict[str, Any], floor: dict[str, Any] | None, command: str
) -> Figure:
    value = row["mb_per_in_flight_session"]
    return Figure(
        "sessions",
        name,
        value,
        "MB",
        "floor",
        floor and floor["mb_per_in_flight_session"],
        f"<= {sessions_report.TARGET_MB_PER_IN_FLIGHT:g} MB (issue 3)",
        None if value is None else value <= sessions_report.TARGET_MB_PER_IN_FLIGHT,
        command,
    )


def learning_figures(document: dict[str, Any]) -> list[Figure]:
    """Issue 11 asks for the figures, with no target; their baselines come from the same run."""
    steps, command = document["steps"], document["command"]
    dataset, tune, evaluation = steps["dataset"], steps["fine_tune"], steps["evaluation"]
    sessions = f"{dataset['sessions']:,} sessions"
    return [
        Figure(
            "learning",
            f"learning: dataset build from {sessions}",
            round(dataset["seconds"], 2),
            "s",
            "writing those sessions (seed)",
            round(steps["seed"]["seconds"], 2),
            command=command,
        ),
        Figure(
            "learning",
            "learning: dataset build, peak Python allocations",
            round(dataset["peak_mb"], 1),
            "MB",
            command=command,
        ),
        Figure(
            "learning",
            f"learning: fine-tuning job turnaround ({tune['status']})",
            round(tune["seconds"], 2),
            "s",
            f"the stand-in's own phases ({STAND_IN_PHASES} x {tune['step_seconds']:g} s)",
            STAND_IN_PHASES * tune["step_seconds"],
            command=command,
        ),
        Figure(
            "learning",
            f"learning: evaluation of {evaluation['items']} held-out items x 2 models",
            round(evaluation["seconds"], 2),
            "s",
            command=command,
        ),
        Figure(
            "learning",
            "learning: evaluation, peak Python allocations",
            round(evaluation["peak_mb"], 1),
            "MB",
            command=command,
        ),
        Figure(
            "learning",
            f"learning: tuned model's accuracy ({evaluation['decision']})",
            evaluation["tuned_accuracy"],
            "",
            "the base model's",
            evaluation["base_accuracy"],
            command=command,
        ),
    ]


def api_figures(document: dict[str, Any]) -> list[Figure]:
    """Submissions through `indorch api serve`, per database and worker count: the capacity
    (closed loop) and the p95 when offered 300/s on a schedule (open loop), each beside the same
    server's no-op answer."""
    command, figures = document["command"], []
    for result in document["results"]:
        database, floor = result["database"], result["floor"]
        workers = result["workers"]
        row = f"API submissions ({database}, {workers} worker{'s' if workers != 1 else ''})"
        capacity, open_loop = result["capacity"], result["open_loop"]
        all_created = result["all_created"]
        offered = open_loop["offered_per_second"]
        p95 = open_loop["latency_ms"]["p95"]
        figures += [
            Figure(
                "api",
                f"{row}: capacity per second (closed loop)",
                capacity["per_second"],
                "/s",
                "GET /health/live, same server",
                floor["per_second"],
                f">= {API_PER_SECOND:g}/s, every answer 201 (issue 12)",
                all_created and capacity["per_second"] >= API_PER_SECOND,
                command,
            ),
            Figure(
                "api",
                f"{row}: p95 at {offered:g}/s offered (open loop)",
                p95,
                "ms",
                "GET /health/live, same server (closed loop)",
                floor["latency_ms"]["p95"],
                f"<= {API_P95_MS:g} ms at {API_PER_SECOND:g}/s offered (issue 12)",
                offered >= API_PER_SECOND and p95 <= API_P95_MS,
                command,
            ),
        ]
    return figures


def api_events_figures(document: dict[str, Any]) -> list[Figure]:
    """SSE fan-out: every reader's latency against the first reader's (the pipeline alone)."""
    figures, command = document["figures"], document["command"]
    readers = figures["readers"]
    p95 = figures["latency_ms"]["p95"]
    at = "" if readers == 1000 else f", stated for 1,000 readers, here {readers:,}"
    return [
        Figure(
            "api_events",
            f"SSE fan-out to {readers:,} readers: event latency p95",
            p95,
            "ms",
            "first reader of each event, p50",
            figures["first_reader_latency_ms"]["p50"],
            f"<= {EVENTS_P95_MS:g} ms (issue 12{at})",
            p95 <= EVENTS_P95_MS,
            command,
        ),
        Figure(
            "api_events",
            "SSE fan-out: readers that got every event once, in order",
            figures["readers_complete_in_order"],
            "",
            "readers",
            readers,
            "all (issue 12)",
            figures["readers_complete_in_order"] == readers,
            command,
        ),
        Figure(
            "api_events",
            "SSE fan-out: server memory per reader",
            figures["memory_per_reader_kb"],
            "KB",
            command=command,
        ),
    ]


ASSEMBLERS = {
    "sessions": session_figures,
    "learning": learning_figures,
    "api": api_figures,
    "api_events": api_events_figures,
}


def assemble(
    documents: dict[str, dict[str, Any]],
    machine: dict[str, Any],
    command: str,
    scale: str,
    failures: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The report: every figure of the benches that ran (in `ASSEMBLERS` order), the machine,
    and the benches that failed (`failures`: bench -> error), so not measured."""
    figures = [
        figure
        for bench, assembler in ASSEMBLERS.items()
        if bench in documents
        for figure in assembler(documents[bench])
    ]
    return {
        "command": command,
        "scale": scale,
        "machine": machine,
        "commands": {
            bench: documents[bench]["command"] for bench in ASSEMBLERS if bench in documents
        },
        "figures": [asdict(figure) | {"ratio": figure.ratio} for figure in figures],
        "met": sum(1 for figure in figures if figure.met is True),
        "not_met": sum(1 for figure in figures if figure.met is False),
        "failures": failures or {},
        "benches": documents,
    }


def _ratio(value: float | None, base: float | None) -> float | None:
    return None if value is None or not base else round(value / base, 2)


def _number(value: float | int | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, int) or (float(value).is_integer() and abs(value) >= 10):
        text = f"{int(value):,}"
    elif abs(value) >= 100:
        text = f"{value:,.1f}"
    elif abs(value) >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3f}"
    return f"{text} {unit}".strip() if unit not in ("/min", "/s") else f"{text}{unit}"


def _met(flag: bool | None) -> str:
    return {True: "yes", False: "**no**", None: "-"}[flag]


def _cells(figure: dict[str, Any]) -> list[str]:
    baseline = (
        f"{_number(figure['baseline'], figure['unit'])} ({figure['baseline_name']})"
        if figure["baseline"] is not None
        else "-"
    )
    ratio = "-" if figure["ratio"] is None else f"{figure['ratio']:g}x"
    return [
        figure["name"],
        _number(figure["value"], figure["unit"]),
        baseline,
        ratio,
        figure["target"] or "-",
        _met(figure["met"]),
    ]


HEADERS = ("figure", "value", "baseline (same run)", "ratio", "target", "met")


def machine_line(machine: dict[str, Any]) -> str:
    load = machine["load_average"]
    return (
        f"{machine['cpus']} cores, {machine['memory_gb']:g} GB; load average (1/5/15 min) "
        f"{_triple(load['start'])} at the start, {_triple(load['end'])} at the end; "
        f"Python {machine['python']}, Dagster {machine['dagster']}, OpenCode "
        f"{machine['opencode']}; {machine['database']}"
    )


def _took(report: dict[str, Any]) -> str:
    seconds = report["machine"].get("seconds")
    return "" if seconds is None else f", {seconds:,.0f} s"


def _triple(values: list[float]) -> str:
    return " / ".join(f"{value:.1f}" for value in values)


def markdown(report: dict[str, Any]) -> str:
    """The README's table, then the commands and the machine."""
    lines = [
        "| " + " | ".join(HEADERS) + " |",
        "|" + "---|" * len(HEADERS),
        *("| " + " | ".join(_cells(figure)) + " |" for figure in report["figures"]),
        "",
        f"Command: `{report['command']}` ({report['scale']} scale{_took(report)}), which ran:",
        "",
        *(f"- {bench}: `{command}`" for bench, command in report["commands"].items()),
        "",
        f"Machine: {machine_line(report['machine'])}.",
        *(
            f"\nNot measured: {bench} failed ({error})."
            for bench, error in report["failures"].items()
        ),
    ]
    return "\n".join(lines) + "\n"


def rich_table(report: dict[str, Any]) -> Table:
    table = Table(title=f"Benchmark report ({report['scale']} scale): {report['command']}")
    for header in HEADERS:
        table.add_column(header, justify="left" if header in ("figure", "target") else "right")
    bench = None
    for figure in report["figures"]:
        if figure["bench"] != bench and bench is not None:
            table.add_section()
        bench = figure["bench"]
        table.add_row(*(cell.replace("**", "") for cell in _cells(figure)))
    table.caption = machine_line(report["machine"])
    return table
