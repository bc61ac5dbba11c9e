"""The bench's latency comparisons (tenant workspaces made by the first waves, as before the
agent-health sensor made them ahead; waves launched on submit) run only when named, beside the
default row."""

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


def test_the_isolated_floor_runs_only_when_named_with_the_default_bound() -> None:
    """The floor of the default configuration: a scratch directory per session, bounded as the
    orchestrator bounds them (`bench.floor`)."""
    assert "floor_isolated" not in [s.key for s in plan(parse([]))]
    named = {s.key: s for s in plan(parse(["--only", "floor,floor_isolated"]))}
    assert list(named) == ["floor", "floor_isolated"]
    assert named["floor_isolated"].isolated and not named["floor"].isolated
    assert named["floor_isolated"].mode == "floor"
