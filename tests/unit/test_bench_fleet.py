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
