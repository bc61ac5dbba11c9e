"""Scratch workspaces as warm slots, with real git and files on a SQLite database.

Contract: concurrent sessions on one agent never share a slot; a freed slot is the next
session's, emptied and made a new repository whose first commit is the same as before (OpenCode
knows it as the same project) and differs from other slots'; a slot is kept for the next session
(its server instance not disposed) until `warm_slots_per_agent` others are free, then retired
(instance disposed first, directory removed); each agent has its own slots; a claim left by a
dead wave is taken back once its session has ended or been retried, never while it may still
work there; an attempt whose slot was taken back touches nothing on release; a link planted
where a slot was is not followed. Slots are made and warmed ahead up to the number kept free
(free or held, they count), one tenant's never in another's place; the next sessions take them
first; a slot held by its warm-up is not taken back until the warm-up is overdue (its warmer
died); a slot whose warm-up failed is removed, not counted as warm.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from domain.session import Session, SessionStatus
from resources.database import Database, tenant_scope, unit_of_work
from resources.git.command_runner import CommandResult, LocalCommandRunner
from services.session_workspaces import SessionWorkspace, SessionWorkspaces, WorkspaceLayout
from tests.integration.repositories.conftest import TENANT


def stored(database: Database, **fields: object) -> Session:
    session = Session(tenant_id=TENANT, title="scratch", initial_prompt="do it", **fields)
    with tenant_scope(TENANT), unit_of_work(database) as uow:
        uow.sessions.add(session)
    return session


def orphaned(database: Database, session_id: str) -> None:
    """Its attempt is over: its agent session lost (the retry sensor will try it again)."""
    with tenant_scope(TENANT), unit_of_work(database) as uow:
        session = uow.sessions.get(session_id)
        event = session.transition_to(SessionStatus.ORPHANED, "agent session lost")
        uow.sessions.save_transition(session, event)


def git_output(directory: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=directory, check=True, capture_output=True, text=True
    ).stdout.strip()


def first_commit(directory: Path) -> str:
    return git_output(directory, "rev-list", "--max-parents=0", "HEAD")


class Disposals:
    def __init__(self) -> None:
        self.directories: list[Path] = []

    def of(self, workspace: SessionWorkspace):
        async def dispose() -> None:
            assert workspace.directory.exists(), "disposed of after its directory went"
            self.directories.append(workspace.directory)

        return dispose


@pytest.fixture
def service(database: Database, tmp_path: Path) -> SessionWorkspaces:
    return SessionWorkspaces(database, WorkspaceLayout(tmp_path / "ws"), warm_slots_per_agent=1)


def prepare(service: SessionWorkspaces, session: Session, agent: str = "agent-1"):
    return asyncio.run(service.prepare(session, print, agent))


def test_concurrent_sessions_get_their_own_slots_and_a_freed_one_is_reused_clean(
    database: Database, service: SessionWorkspaces
) -> None:
    one, two, three = stored(database), stored(database), stored(database)

    async def two_at_once() -> tuple[SessionWorkspace, SessionWorkspace]:
        first, second = await asyncio.gather(
            service.prepare(one, print, "agent-1"), service.prepare(two, print, "agent-1")
        )
        return first, second

    first, second = asyncio.run(two_at_once())
    assert first.directory != second.directory
    assert first.directory.name.startswith("slot-") and second.directory.name.startswith("slot-")
    assert first_commit(first.directory) != first_commit(second.directory)
    commit = first_commit(first.directory)
    (first.directory / "left-behind.txt").write_text("one's\n")
    (first.directory / "nested").mkdir()
    (first.directory / "nested" / "deep.txt").write_text("one's\n")

    disposals = Disposals()
    asyncio.run(service.release(one, first, disposals.of(first)))
    assert disposals.directories == []  # kept warm: its instance is not disposed
    assert first.directory.is_dir() and os.listdir(first.directory) == []  # one's files gone

    third = prepare(service, three)
    assert third.directory == first.directory  # the freed slot, not a new directory
    assert sorted(os.listdir(third.directory)) == [".git"]
    assert first_commit(third.directory) == commit  # the same project for the server


class CountingRunner(LocalCommandRunner):
    """The real runner, counting the git commands it runs."""

    def __init__(self) -> None:
        super().__init__()
        self.git_commands: list[str] = []

    async def run(self, argv: Sequence[str], **kwargs: Any) -> CommandResult:
        if argv and argv[0] == "git":
            self.git_commands.append(_git_subcommand(list(argv[1:])))
        return await super().run(argv, **kwargs)


def _git_subcommand(args: list[str]) -> str:
    while args and args[0].startswith("-"):
        args = args[2:] if args[0] == "-c" else args[1:]
    return args[0] if args else ""


def test_a_slot_made_again_is_its_first_repository_copied_without_git_and_untampered(
    database: Database, tmp_path: Path
) -> None:
    """A slot's repository is made by git once; made again for the next session, it is a copy
    of that first one kept where the sessions cannot write (no git process: two per start
    were ~5 % of the run worker's CPU), so whatever a session did to `.git` (a hook, a
    config that runs a command, commits) is gone."""
    runner = CountingRunner()
    service = SessionWorkspaces(
        database, WorkspaceLayout(tmp_path / "ws"), runner=runner, warm_slots_per_agent=1
    )
    one, two = stored(database), stored(database)
    first = prepare(service, one)
    assert runner.git_commands.count("init") == 1
    commit = first_commit(first.directory)
    git_dir = first.directory / ".git"
    (git_dir / "hooks").mkdir(exist_ok=True)
    (git_dir / "hooks" / "post-checkout").write_text("#!/bin/sh\necho planted\n")
    with (git_dir / "config").open("a") as config:
        config.write("[core]\n\tfsmonitor = echo planted\n")
    (first.directory / "work.txt").write_text("one's\n")
    subprocess.run(["git", "add", "."], cwd=first.directory, check=True)
    subprocess.run(
        ["git", "-c", "user.name=a", "-c", "user.email=a@b", "commit", "-qm", "one's"],
        cwd=first.directory,
        check=True,
    )
    asyncio.run(service.release(one, first, Disposals().of(first)))
    made = len(runner.git_commands)

    second = prepare(service, two)
    assert second.directory == first.directory
    assert len(runner.git_commands) == made  # copied, no git process
    assert sorted(os.listdir(second.directory)) == [".git"]
    head = git_output(second.directory, "rev-parse", "HEAD")
    assert head == commit == first_commit(second.directory)  # one's commit gone
    assert "planted" not in (second.directory / ".git" / "config").read_text()
    assert not (second.directory / ".git" / "hooks" / "post-checkout").exists()
    assert git_output(second.directory, "status", "--porcelain") == ""


def test_a_slot_freed_while_enough_others_are_free_is_retired(
    database: Database, service: SessionWorkspaces
) -> None:
    sessions = [stored(database) for _ in range(3)]

    async def three_at_once() -> list[SessionWorkspace]:
        return list(await asyncio.gather(*(service.prepare(s, print, "a") for s in sessions)))

    workspaces = asyncio.run(three_at_once())
    disposals = Disposals()
    for session, workspace in zip(sessions, workspaces, strict=True):
        asyncio.run(service.release(session, workspace, disposals.of(workspace)))
    # One stays warm (warm_slots_per_agent=1); the other two are disposed of, then removed.
    kept = [w.directory for w in workspaces if w.directory.exists()]
    assert len(kept) == 1
    assert sorted(disposals.directories) == sorted(
        w.directory for w in workspaces if w.directory not in kept
    )
    # The next session takes the warm one.
    assert prepare(service, stored(database), "a").directory == kept[0]


def test_each_agent_has_its_own_slots(database: Database, service: SessionWorkspaces) -> None:
    one, two = stored(database), stored(database)
    on_first = prepare(service, one, "agent-1")
    asyncio.run(service.release(one, on_first))
    on_second = prepare(service, two, "agent-2")  # agent-1's slot is free, but not this agent's
    assert on_second.directory != on_first.directory


def test_a_dead_waves_claim_is_taken_back_only_once_its_attempt_is_over(
    database: Database, service: SessionWorkspaces
) -> None:
    abandoned = stored(database, status=SessionStatus.RUNNING)
    held = prepare(service, abandoned)  # its wave dies: never released

    # While it may still work there, a new session gets another slot.
    other = stored(database)
    assert prepare(service, other).directory != held.directory

    # Its attempt over (ORPHANED): its old slot is taken back.
    orphaned(database, abandoned.id)
    late = stored(database)
    taken = prepare(service, late)
    assert taken.directory == held.directory
    assert sorted(os.listdir(taken.directory)) == [".git"]
    (taken.directory / "late.txt").write_text("late's\n")

    # The dead attempt's release, come late, touches nothing of the new holder's.
    disposals = Disposals()
    asyncio.run(service.release(abandoned, held, disposals.of(held)))
    assert (taken.directory / "late.txt").read_text() == "late's\n"
    assert disposals.directories == []


def test_a_link_planted_where_a_slot_was_is_not_followed(
    database: Database, service: SessionWorkspaces, tmp_path: Path
) -> None:
    session = stored(database)
    workspace = prepare(service, session)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep\n")
    # The agent replaces its slot by a link to somewhere else before the session ends.
    os.rename(workspace.directory, tmp_path / "moved-away")
    os.symlink(outside, workspace.directory)
    asyncio.run(service.release(session, workspace))
    assert (outside / "precious.txt").read_text() == "keep\n"


def warm_ahead(service: SessionWorkspaces, agent: str = "agent-1", limit: int = 10, warm=None):
    warmed: list[Path] = []

    async def record(directory: Path) -> None:
        assert sorted(os.listdir(directory)) == [".git"]  # a repository, as a session's is
        warmed.append(directory)

    made = asyncio.run(service.warm_slots_ahead(TENANT, agent, warm or record, limit))
    return made, warmed


def test_slots_are_made_and_warmed_ahead_up_to_the_number_kept_and_taken_by_the_next_sessions(
    database: Database, tmp_path: Path
) -> None:
    service = SessionWorkspaces(database, WorkspaceLayout(tmp_path / "ws"), warm_slots_per_agent=2)
    made, warmed = warm_ahead(service, limit=1)  # the tick's budget: one
    assert made == 1 and len(warmed) == 1
    made, more = warm_ahead(service)
    assert made == 1 and len(more) == 1 and more != warmed
    warmed += more
    assert warm_ahead(service) == (0, [])  # as many as are kept free: none more

    sessions = [stored(database) for _ in range(3)]

    async def three_at_once() -> list[SessionWorkspace]:
        return list(await asyncio.gather(*(service.prepare(s, print, "agent-1") for s in sessions)))

    taken = [w.directory for w in asyncio.run(three_at_once())]
    assert set(warmed) <= set(taken)  # the warm ones first
    assert len(set(taken)) == 3  # the third a new one: the warm ones were held
    # While all are held, a warm-up makes none (the made ones count, free or not).
    assert warm_ahead(service) == (0, [])
    # Another tenant's warm-up never makes or warms one in this tenant's place.
    other = asyncio.run(service.warm_slots_ahead("globex", "agent-1", _refuse_acme, 10))
    assert other == 2


async def _refuse_acme(directory: Path) -> None:
    assert TENANT not in directory.parts, f"globex's warm-up in acme's place: {directory}"


def test_a_slot_being_warmed_is_not_taken_back_until_its_warm_up_is_overdue(
    database: Database, tmp_path: Path
) -> None:
    service = SessionWorkspaces(database, WorkspaceLayout(tmp_path / "ws"), warm_slots_per_agent=1)
    during: list[Path] = []

    async def a_session_starts_meanwhile(directory: Path) -> None:
        session_slot = await service.prepare(stored(database), print, "agent-1")
        assert session_slot.directory != directory  # held by the warm-up: not taken back
        during.append(session_slot.directory)

    assert warm_ahead(service, warm=a_session_starts_meanwhile)[0] == 1
    assert during


DIES_WHILE_WARMING = """
import asyncio, os, sys
from pathlib import Path
from resources.database import Database
from services.session_workspaces import SessionWorkspaces, WorkspaceLayout

async def dies(directory):
    print(directory, flush=True)
    os._exit(0)  # killed mid-warm-up: nothing after this runs

layout = WorkspaceLayout(Path(sys.argv[2]))
service = SessionWorkspaces(Database(sys.argv[1]), layout, warm_slots_per_agent=1)
asyncio.run(service.warm_slots_ahead(sys.argv[3], "agent-1", dies, 1))
"""


def test_a_warm_up_claim_left_by_a_dead_warmer_is_taken_back_once_overdue(
    database: Database, tmp_path: Path, migrated_sqlite_url: str
) -> None:
    from services.workspace_slots import WARM_UP_CLAIM_SECONDS

    root = tmp_path / "ws"
    service = SessionWorkspaces(database, WorkspaceLayout(root), warm_slots_per_agent=1)
    child = subprocess.run(
        [sys.executable, "-c", DIES_WHILE_WARMING, migrated_sqlite_url, str(root), TENANT],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[3],
    )
    left = Path(child.stdout.strip())
    claims = list(root.rglob("*.claim"))
    assert len(claims) == 1 and left.is_dir()
    # Fresh: a session makes a new slot rather than take it.
    assert prepare(service, stored(database)).directory != left
    overdue = claims[0].stat().st_mtime - WARM_UP_CLAIM_SECONDS - 1
    os.utime(claims[0], (overdue, overdue))
    assert prepare(service, stored(database)).directory == left


def test_a_slot_whose_warm_up_failed_is_not_kept(database: Database, tmp_path: Path) -> None:
    from resources.opencode.errors import AgentServerError

    service = SessionWorkspaces(database, WorkspaceLayout(tmp_path / "ws"), warm_slots_per_agent=1)
    tried: list[Path] = []

    async def server_fails(directory: Path) -> None:
        tried.append(directory)
        raise AgentServerError("http://agent", "POST /session: 500", 500)

    with pytest.raises(AgentServerError):
        warm_ahead(service, warm=server_fails)
    assert not tried[0].exists()  # not counted as a warm slot
    assert list((tmp_path / "ws").rglob("*.claim")) == []
    made, warmed = warm_ahead(service)  # the next tick tries again
    assert made == 1 and warmed == tried
