"""Adversarial: git may run as a tenant's user in directories that user writes in, so the files the
control plane itself opens there are never followed through a link the tenant planted. The patch
is read only as a plain file of the workspace's owner; the mirrors' locks live where it says."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from resources.git.checkout import GitCheckouts, GitFailed
from resources.git.command_runner import CommandResult, LocalCommandRunner, OutputSink
from tests.integration.repositories.support import bare_remote, git

SECRET = "the-platform-secret-key"


class PlantingRunner:
    """Git as usual, then (as a tenant's agent racing it would) the diff's output file replaced
    by `plant(path)`."""

    def __init__(self, plant) -> None:  # type: ignore[no-untyped-def]
        self._runner = LocalCommandRunner()
        self._plant = plant

    async def run(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        timeout: float,
        on_output: OutputSink | None = None,
    ) -> CommandResult:
        result = await self._runner.run(argv, cwd=cwd, env=env, timeout=timeout)
        output = next((a.split("=", 1)[1] for a in argv if a.startswith("--output=")), None)
        if output:
            self._plant(Path(output))
        return result


def a_worktree(tmp_path: Path) -> tuple[Path, str]:
    remote = bare_remote(tmp_path)
    tree = tmp_path / "tree"
    git(tmp_path, "clone", "--quiet", str(remote), str(tree))
    base = git(tree, "rev-parse", "HEAD").strip()
    (tree / "new.txt").write_text("new\n")
    git(tree, "add", "--all")
    git(tree, "commit", "--quiet", "-m", "change")
    return tree, base


def test_a_patch_replaced_by_a_link_to_another_file_is_not_read(tmp_path: Path) -> None:
    tree, base = a_worktree(tmp_path)
    secret = tmp_path / "secret.key"
    secret.write_text(SECRET)

    def link(path: Path) -> None:
        path.unlink()
        path.symlink_to(secret)

    checkouts = GitCheckouts(PlantingRunner(link), tmp_path / "home")
    with pytest.raises(GitFailed) as failed:
        asyncio.run(checkouts.patch(tree, base, tmp_path / "out.patch"))
    assert SECRET not in failed.value.reason
    assert secret.read_text() == SECRET


def test_a_patch_hard_linked_to_another_file_is_not_read(tmp_path: Path) -> None:
    tree, base = a_worktree(tmp_path)
    secret = tmp_path / "secret.key"
    secret.write_text(SECRET)

    def hard_link(path: Path) -> None:
        path.unlink()
        os.link(secret, path)

    checkouts = GitCheckouts(PlantingRunner(hard_link), tmp_path / "home")
    with pytest.raises(GitFailed):
        asyncio.run(checkouts.patch(tree, base, tmp_path / "out.patch"))


def test_a_patch_of_another_owner_is_not_read(tmp_path: Path) -> None:
    tree, base = a_worktree(tmp_path)
    checkouts = GitCheckouts(
        PlantingRunner(lambda _: None), tmp_path / "home", owner_uid=os.getuid() + 1
    )
    with pytest.raises(GitFailed, match="not a plain file of the workspace's owner"):
        asyncio.run(checkouts.patch(tree, base, tmp_path / "out.patch"))


def test_the_plain_patch_is_read(tmp_path: Path) -> None:
    tree, base = a_worktree(tmp_path)
    checkouts = GitCheckouts(PlantingRunner(lambda _: None), tmp_path / "home")
    patch = asyncio.run(checkouts.patch(tree, base, tmp_path / "out.patch"))
    assert "+++ b/new.txt" in patch and not (tmp_path / "out.patch").exists()


def test_mirror_locks_are_kept_in_the_lock_directory(tmp_path: Path) -> None:
    mirrors, locks = tmp_path / "mirrors", tmp_path / "locks"
    checkouts = GitCheckouts(LocalCommandRunner(), tmp_path / "home", lock_dir=locks)

    async def hold() -> None:
        async with checkouts.locked(mirrors / "app.git"):
            assert (locks / "app.lock").exists()

    asyncio.run(hold())
    assert not mirrors.exists()
