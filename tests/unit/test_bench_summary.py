"""The benchmark report is assembled from the benches' results documents alone: each figure beside
its baseline from the same run, the ratio, the issue's target and whether it is met; a bench that
did not run adds no row, one that failed is named as not measured."""

from typing import Any

from bench.summary import assemble, markdown, rich_table

MACHINE = {
    "cpus": 2,
    "memory_gb": 23.4,
    "load_average": {"start": [8.2, 5.3, 2.5], "end": [6.0, 5.9, 4.1]},
    "python": "3.11.7",
    "dagster": "1.13.0",
    "opencode": "1.18.33",
    "sqlite": "3.45.1",
    "database": "SQLite 3.45.1 (sessions)",
}


def _scenario(key: str, per_minute: float, **figures: Any) -> dict[str, Any]:
    return {
        "key": key,
        "sessions": figures.pop("sessions", 300),
        "wave_size": figures.pop("wave_size", 100),
        "sessions_per_minute": per_minute,
        "latency_p50_s": figures.pop("p50", 6.0),
        "latency_p95_s": figures.pop("p95", 8.0),
        "cpu_seconds_per_session": figures.pop("cpu", 0.03),
        "mb_per_in_flight_session": figures.pop("mb", 0.06),
        "max_in_flight": figures.pop("in_flight", 300),
        "completed": figures.pop("completed", 300),
        "retried": figures.pop("retried", 0),
        "timed_out": figures.pop("timed_out", False),
    }


SESSIONS = {
    "command": ".venv/bin/python -m bench.sessions --quick",
    "scenarios": [
        _scenario("floor", 200.0, p50=6.0, p95=8.0, cpu=0.04),
        _scenario("wave1", 20.0, wave_size=1),
        _scenario("worker", 180.0, p50=6.5, p95=12.0, cpu=0.08, mb=0.47),
        _scenario(
            "inflight",
            240.0,
            sessions=1000,
            in_flight=739,
            mb=1.3,
            completed=990,
            retried=12,
            timed_out=True,
        ),
    ],
}
LEARNING = {
    "command": "python -m bench.learning --sessions 1000",
    "steps": {
        "seed": {"sessions": 1000, "seconds": 5.0},
        "dataset": {"sessions": 1000, "train": 950, "eval": 50, "seconds": 0.5, "peak_mb": 4.0},
        "fine_tune": {"status": "COMPLETED", "seconds": 4.5, "step_seconds": 1.0},
        "evaluation": {
            "items": 50,
            "seconds": 1.2,
            "peak_mb": 3.0,
            "base_accuracy": 0.0,
            "tuned_accuracy": 1.0,
            "decision": "PROMOTE",
        },
    },
}
API = {
    "command": ".venv/bin/python -m bench.api --requests 300",
    "results": [
        {
            "database": "sqlite",
            "workers": 1,
            "capacity": {"per_second": 150.0, "latency_ms": {"p50": 80.0, "p95": 90.0}},
            "open_loop": {
                "offered_per_second": 300.0,
                "achieved_per_second": 150.0,
                "latency_ms": {"p50": 80.0, "p95": 40.0, "p99": 300.0},
            },
            "all_created": True,
            "floor": {"per_second": 600.0, "latency_ms": {"p50": 20.0, "p95": 30.0}},
        }
    ],
}
API_EVENTS = {
    "command": ".venv/bin/python -m bench.api_events --readers 200",
    "figures": {
        "readers": 200,
        "readers_complete_in_order": 199,
        "latency_ms": {"p95": 120.0},
        "first_reader_latency_ms": {"p50": 10.0},
        "memory_per_reader_kb": 50.0,
    },
}


def _by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {figure["name"]: figure for figure in report["figures"]}


def _full_report() -> dict[str, Any]:
    documents = {
        "sessions": SESSIONS,
        "learning": LEARNING,
        "api": API,
        "api_events": API_EVENTS,
    }
    return assemble(documents, MACHINE, ".venv/bin/python -m bench --quick", "quick")


def test_the_run_workers_throughput_is_set_beside_the_floor_and_the_naive_design() -> None:
    figures = _by_name(_full_report())
    floor = figures["sessions, run worker, wave size 100: sessions/min"]
    assert (floor["value"], floor["baseline"], floor["ratio"]) == (180.0, 200.0, 0.9)
    assert floor["met"] is True  # 0.9 of the floor, though only 9x wave size 1
    naive = figures["sessions, run worker, wave size 100: sessions/min vs one run per session"]
    assert (naive["baseline"], naive["ratio"], naive["met"]) == (20.0, 9.0, True)
    assert floor["command"] == ".venv/bin/python -m bench.sessions --quick"


def test_latency_and_cpu_are_held_to_the_floor_plus_or_times_the_issue_allows() -> None:
    figures = _by_name(_full_report())
    row = "sessions, run worker, wave size 100: "
    assert figures[row + "submit -> prompt p50"]["met"] is True  # 6.5 <= 6.0 + 1
    assert figures[row + "submit -> prompt p95"]["met"] is False  # 12 > 8 + 3
    assert figures[row + "control-plane CPU-s / session"]["met"] is True  # 0.08 <= 0.1
    assert figures[row + "control-plane CPU-s / session vs floor"]["met"] is False  # 2x floor
    held = figures["sessions, 1,000 held at once (max 739 in flight): MB / in-flight session"]
    assert held["met"] is False  # 1.3 MB > 1 MB


def test_with_the_isolated_floor_the_default_configuration_is_measured_against_it() -> None:
    """Its sessions each have a directory of their own, as the isolated floor's do: that floor
    is its baseline for throughput, latency and CPU (the direct floor stays in its own row)."""
    isolated = _scenario("floor_isolated", 160.0, p50=60.0, p95=80.0, cpu=0.02)
    sessions = {**SESSIONS, "scenarios": [*SESSIONS["scenarios"], isolated]}
    documents = {"sessions": sessions}
    figures = _by_name(assemble(documents, MACHINE, "python -m bench", "quick"))
    row = "sessions, run worker, wave size 100: "
    rate = figures[row + "sessions/min"]
    assert (rate["baseline"], rate["ratio"], rate["met"]) == (160.0, 1.12, True)
    assert rate["baseline_name"].startswith("isolated floor")
    assert figures[row + "submit -> prompt p50"]["baseline"] == 60.0
    assert figures[row + "submit -> prompt p95"]["met"] is True  # 12 <= 80 + 3
    cpu = figures[row + "control-plane CPU-s / session vs floor"]
    assert (cpu["baseline"], cpu["ratio"], cpu["met"]) == (0.02, 4.0, False)


def test_a_row_that_timed_out_before_every_session_completed_says_so() -> None:
    figures = _by_name(_full_report())
    worker = figures["sessions, run worker, wave size 100: sessions completed (0 retried)"]
    assert (worker["value"], worker["baseline"], worker["met"]) == (300, 300, True)
    held = figures[
        "sessions, 1,000 held at once (max 739 in flight): sessions completed "
        "(12 retried, timed out)"
    ]
    assert (held["value"], held["baseline"], held["met"]) == (990, 1000, False)


def test_figures_without_a_target_are_neither_met_nor_missed() -> None:
    figures = _by_name(_full_report())
    turnaround = figures["learning: fine-tuning job turnaround (COMPLETED)"]
    assert (turnaround["baseline"], turnaround["ratio"], turnaround["met"]) == (3.0, 1.5, None)
    build = figures["learning: dataset build from 1,000 sessions"]
    assert (build["baseline"], build["ratio"], build["target"]) == (5.0, 0.1, "")
    assert figures["learning: dataset build, peak Python allocations"]["baseline"] is None


def test_api_figures_are_set_beside_the_same_servers_no_op_answer() -> None:
    figures = _by_name(_full_report())
    rate = figures["API submissions (sqlite, 1 worker): capacity per second (closed loop)"]
    assert (rate["ratio"], rate["met"]) == (0.25, False)  # 150/s < 300/s
    p95 = figures["API submissions (sqlite, 1 worker): p95 at 300/s offered (open loop)"]
    assert (p95["value"], p95["baseline"], p95["met"]) == (40.0, 30.0, True)
    sse = figures["SSE fan-out to 200 readers: event latency p95"]
    assert sse["met"] is True and "here 200" in sse["target"]
    complete = figures["SSE fan-out: readers that got every event once, in order"]
    assert complete["met"] is False  # one reader of 200 missed an event


def test_the_report_counts_targets_and_keeps_commands_machine_and_documents() -> None:
    report = _full_report()
    assert report["commands"]["api"] == API["command"]
    assert report["benches"]["learning"] is LEARNING
    assert (report["met"], report["not_met"]) == (8, 6)


def test_a_bench_that_did_not_run_adds_no_row_and_a_failed_one_is_named() -> None:
    report = assemble(
        {"learning": LEARNING}, MACHINE, "python -m bench", "full", {"api": "OSError: refused"}
    )
    assert {figure["bench"] for figure in report["figures"]} == {"learning"}
    assert "Not measured: api failed (OSError: refused)." in markdown(report)


def test_the_markdown_table_has_one_line_per_figure_then_commands_and_machine() -> None:
    report = _full_report()
    text = markdown(report)
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + len(report["figures"])
    assert "| 180/min | 200/min (floor: direct agent calls) | 0.9x |" in text
    assert "- sessions: `.venv/bin/python -m bench.sessions --quick`" in text
    assert "load average (1/5/15 min) 8.2 / 5.3 / 2.5 at the start" in text
    assert rich_table(report).row_count == len(report["figures"])
