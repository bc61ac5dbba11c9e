"""The bench's latency comparison (tenant workspaces made by the first waves, as before the
agent-health sensor made them ahead) runs only when named, beside the default row."""

from bench.sessions import parse, plan


def test_the_late_workspaces_row_runs_only_when_named() -> None:
    assert "worker_late_workspaces" not in [s.key for s in plan(parse([]))]
    named = {s.key: s for s in plan(parse(["--only", "worker,worker_late_workspaces"]))}
    assert list(named) == ["worker", "worker_late_workspaces"]
    assert named["worker"].workspaces_ahead and not named["worker_late_workspaces"].workspaces_ahead
    assert named["worker_late_workspaces"].mode == "worker"
