"""The bench's latency comparisons (tenant workspaces made by the first waves, as before the
agent-health sensor made them ahead; waves launched on submit) run only when named, beside the
default row."""

from bench.report import comparisons
from bench.sessions import command_line, parse, plan


def test_the_late_workspaces_row_runs_only_when_named() -> None:
    assert "worker_late_workspaces" not in [s.key for s in plan(parse([]))]
    named = {s.key: s for s in plan(parse(["--only", "worker,worker_late_workspaces"]))}
    assert list(named) == ["worker", "worker_late_workspaces"]
    assert named["worker"].workspaces_ahead and not named["worker_late_workspaces"].workspaces_ahead
    assert named["worker_late_workspaces"].mode == "worker"


def test_the_launched_on_submit_row_runs_only_when_named_beside_the_worker_row() -> None:
    assert "worker_triggered" not in [s.key for s in plan(parse([]))]
    named = {s.key: s for s in plan(parse(["--only", "floor,worker,worker_triggered"]))}
    assert list(named) == ["floor", "worker", "worker_triggered"]
    assert named["worker_triggered"].launch_on_submit and not named["worker"].launch_on_submit
    assert named["worker_triggered"].mode == named["worker"].mode == "worker"


def test_the_command_recorded_names_the_bench_variables_it_ran_with() -> None:
    """A results file read later says how to run it again: the `INDORCH_BENCH_*` settings (the
    sessions' workspaces, the starts per agent, ...) are part of its command."""
    environment = {
        "INDORCH_BENCH_SESSION_WORKSPACES": "0",
        "INDORCH_BENCH_STARTS_PER_AGENT": "100",
        "INDORCH_DATABASE_URL": "sqlite:///elsewhere.db",  # not a bench setting
        "HOME": "/somewhere",
    }
    command = command_line(["--sessions", "300", "--only", "floor,worker"], environment)
    assert command == (
        "INDORCH_BENCH_SESSION_WORKSPACES=0 INDORCH_BENCH_STARTS_PER_AGENT=100 "
        ".venv/bin/python -m bench.sessions --sessions 300 --only floor,worker"
    )
    assert command_line(["--quick"], {}) == ".venv/bin/python -m bench.sessions --quick"


def test_the_isolated_floor_runs_by_default_with_the_default_bound() -> None:
    """The floor of the default configuration: a scratch directory per session, bounded as the
    orchestrator bounds them (`bench.floor`); the default run has it beside the unisolated one."""
    default = {s.key: s for s in plan(parse([]))}
    assert {"floor", "floor_isolated"} <= set(default)
    assert default["floor_isolated"].isolated and not default["floor"].isolated
    assert default["floor_isolated"].mode == "floor"


def test_the_held_row_keeps_its_sessions_in_their_tenants_worktree() -> None:
    """A thousand held sessions each in a workspace of its own would be a thousand OpenCode
    instances on three servers; the row measures the control plane's memory per held session."""
    default = {s.key: s for s in plan(parse([]))}
    assert not default["inflight"].session_workspaces
    assert all(s.session_workspaces for key, s in default.items() if key != "inflight")


def _row(key: str, per_minute: float, cpu: float = 0.05) -> dict[str, object]:
    return {
        "key": key,
        "sessions_per_minute": per_minute,
        "cpu_seconds_per_session": cpu,
        "mb_per_in_flight_session": 0.5,
        "cpu_seconds": cpu * 300,
        "runs": 10,
    }


def test_the_default_configuration_is_compared_with_the_isolated_floor() -> None:
    """Its sessions each have a workspace of their own: the floor that does the same is its
    measure; the unisolated floor's share is kept as the cost of isolation."""
    results = [
        _row("floor", 200.0, 0.02),
        _row("floor_isolated", 160.0, 0.025),
        _row("wave1", 10.0),
        _row("worker", 144.0, 0.075),
    ]
    worker = comparisons(results)["worker"]
    assert worker["share_of_floor"] == 0.9
    assert worker["floor"] == "floor_isolated"
    assert worker["share_of_unisolated_floor"] == 0.72
    assert worker["cpu_over_floor"] == 3.0
    assert worker["throughput_target_met"]


def test_without_an_isolated_floor_the_unisolated_one_is_the_measure() -> None:
    worker = comparisons([_row("floor", 200.0), _row("worker", 150.0)])["worker"]
    assert worker["floor"] == "floor"
    assert worker["share_of_floor"] == 0.75
    assert not worker["throughput_target_met"]
