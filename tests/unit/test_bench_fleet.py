"""The bench's agent side: a restart gives every scenario fresh servers, their storage included."""

from pathlib import Path

from bench.fleet import Fleet


def test_restarted_servers_never_reuse_a_home(tmp_path: Path) -> None:
    """A server's HOME holds its storage (every session it ran, their snapshots): servers
    restarted on the same HOME carried the earlier scenarios' sessions, and a server grows slower
    with the sessions it holds, so each later row of a run was measured on slower servers."""
    fleet = Fleet(tmp_path)
    first = [fleet.next_home(number) for number in range(3)]
    again = [fleet.next_home(number) for number in range(3)]
    assert len(set(first)) == 3
    assert not set(first) & set(again)
    assert all(home.parent == tmp_path for home in first + again)


def test_the_agent_sides_cpu_is_split_by_role_over_the_window() -> None:
    """Whether the orchestrated rows' extra agent CPU is the servers' or the model's: each
    role's CPU over the measured window."""
    from bench.scenario import cpu_by_role_since

    before = {"servers": 10.0, "model": 2.0}
    after = {"servers": 40.5, "model": 7.25}
    assert cpu_by_role_since(before, after) == {"servers": 30.5, "model": 5.25}
    assert cpu_by_role_since({}, {"runtimes": 3.0}) == {"runtimes": 3.0}
