"""The OpenCode install's shared copy for the sandboxes: made once, even when several runtimes
start at the same time in one process (the demo starts its tenants' runtimes in parallel: two
copies under one draft name collided, `FileExistsError`)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from resources.runtime_host.shared_install import SHARED_DIR, sandbox_visible


def private_install(tmp_path: Path) -> tuple[Path, Path]:
    private = tmp_path / "private"
    install = private / "opencode"
    (install / "bin").mkdir(parents=True)
    binary = install / "bin" / "opencode"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    for number in range(200):  # enough files that two copies overlap in time
        (install / f"module-{number}.js").write_text("x" * 100)
    private.chmod(0o700)  # others may not enter: a copy is needed
    return install, binary


def test_runtimes_starting_together_share_one_copy(tmp_path: Path) -> None:
    install, binary = private_install(tmp_path)
    root = tmp_path / "runtimes"
    root.mkdir()
    barrier = threading.Barrier(4)

    def start() -> tuple[Path, Path]:
        barrier.wait()
        return sandbox_visible(install, binary, root)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: start(), range(4)))

    assert len(set(results)) == 1
    copied_install, copied_binary = results[0]
    assert copied_binary.read_text() == "#!/bin/sh\n"
    assert copied_install.parent == root / SHARED_DIR
    assert [p.name for p in (root / SHARED_DIR).iterdir()] == [copied_install.name]  # no draft
