"""The demo's patch stat counts what `git diff --shortstat` counts: files, added and removed
lines; a file's `--- a/…` / `+++ b/…` header lines are not changes, a changed line that starts
with `++` or `--` is."""

from __future__ import annotations

import subprocess
from pathlib import Path

from indorch.demo.repositories import patch_stat

IDENTITY = ["-c", "user.name=t", "-c", "user.email=t@example.invalid"]


def _git(directory: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *IDENTITY, *args], cwd=directory, capture_output=True, text=True, check=True
    )
    return done.stdout


def test_the_patch_stat_agrees_with_git_shortstat(tmp_path: Path) -> None:
    _git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "kept.md").write_text("one\n-- two\nthree\n")
    (tmp_path / "gone.md").write_text("bye\n")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-qm", "base")
    (tmp_path / "kept.md").write_text("one\n++ two\nthree\nfour\n")
    (tmp_path / "gone.md").unlink()
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "file.py").write_text("+++ looks like a header\n--- so does this\n")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-qm", "change")

    patch = _git(tmp_path, "diff", "--binary", "HEAD~1", "HEAD")
    shortstat = _git(tmp_path, "diff", "--shortstat", "HEAD~1", "HEAD")

    assert shortstat.strip() == "3 files changed, 4 insertions(+), 2 deletions(-)"
    assert patch_stat(patch) == "3 files, +4 -2"


def test_one_file_is_singular_and_no_patch_is_nothing() -> None:
    one = "diff --git a/x b/x\nnew file mode 100644\n--- /dev/null\n+++ b/x\n@@ -0,0 +1 @@\n+x\n"
    assert patch_stat(one) == "1 file, +1 -0"
    assert patch_stat("") == "0 files, +0 -0"
