"""The OpenCode install as a tenant's sandbox can open it.

bwrap opens the paths it mounts as the tenant's user: an install below a directory others may not
enter (a checkout in a private temporary directory, a home at 0700) cannot be mounted. Such an
install is linked (hard links, else copied) once into the runtime root, world-readable, under a
name that changes with the installed binary, and that copy is mounted instead.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
from pathlib import Path

SHARED_DIR = ".opencode"


def reachable_by_others(path: Path) -> bool:
    """True when any user may enter every directory down to `path` (and read it)."""
    if not path.stat().st_mode & stat.S_IROTH:
        return False
    return all(parent.stat().st_mode & stat.S_IXOTH for parent in (path, *path.parents))


def sandbox_visible(install: Path, binary: Path, root: Path) -> tuple[Path, Path]:
    """(install, binary) as they are if others can reach them, else their shared copy."""
    if reachable_by_others(install):
        return install, binary
    identity = f"{install}:{binary.stat().st_size}:{binary.stat().st_mtime_ns}"
    target = root / SHARED_DIR / hashlib.sha256(identity.encode()).hexdigest()[:16]
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(target.parent, 0o755)
        # A draft of this call's own: runtimes started at once in one process (threads) or in
        # several each copy, and the first rename wins.
        draft = Path(tempfile.mkdtemp(prefix=f"{target.name}.", dir=target.parent))
        shutil.copytree(
            install, draft, symlinks=True, copy_function=_link_or_copy, dirs_exist_ok=True
        )
        _readable_by_all(draft)
        try:
            draft.rename(target)
        except OSError:  # another runtime start made it first
            shutil.rmtree(draft, ignore_errors=True)
    return target, target / binary.relative_to(install)


def _link_or_copy(source: str, destination: str) -> None:
    try:
        os.link(source, destination)
    except OSError:  # another filesystem
        shutil.copy2(source, destination)


def _readable_by_all(top: Path) -> None:
    for directory, _, files in os.walk(top):
        os.chmod(directory, 0o755)
        for name in files:
            path = Path(directory, name)
            if not path.is_symlink():
                mode = path.stat().st_mode
                path.chmod(mode | stat.S_IROTH | (stat.S_IXOTH if mode & stat.S_IXUSR else 0))
