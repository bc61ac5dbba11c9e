"""The demo's code repositories: one small git repository per tenant, made by the demo, served
over HTTP with credentials, registered as the tenant's (as `indorch secret set` and
`indorch repo add` do), for the sessions that work on it.

The repositories are bare ones in the state directory, served by `git http-backend`
(`standins.git_http_server`, a child process of the demo) on the loopback: the tenants'
sandboxed runtimes reach it over the shared network (a `file://` remote would not do: the sandbox
mounts nothing of the state directory). Each session on one gets its own worktree inside its
tenant's runtime, on the branch `indorch/<session id>`, which the wave pushes back here.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from domain.caller import Caller
from domain.code_repository import CodeRepository
from resources.database import Database
from services.factory import ServiceFactory

CREDENTIALS_SECRET = "demo-git"
GIT_ENV = {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
IDENTITY = ["-c", "user.name=Industrial Orchestrator demo", "-c", "user.email=demo@localhost"]


@dataclass(frozen=True)
class DemoRepository:
    tenant: str
    name: str
    files: dict[str, str]

    def bare(self, root: Path) -> Path:
        """Where it is served from: `<root>/<tenant>/<name>.git`."""
        return root / self.tenant / f"{self.name}.git"

    def url(self, server_url: str) -> str:
        return f"{server_url}/{self.tenant}/{self.name}.git"


REPOSITORIES = (
    DemoRepository(
        "acme",
        "app",
        {
            "README.md": "# Acme app\n\nA small service; sessions add to it.\n",
            "src/app.py": 'def main() -> None:\n    print("acme")\n',
        },
    ),
    DemoRepository(
        "globex",
        "handbook",
        {
            "README.md": "# Globex handbook\n\nReports and settings.\n",
            "reports/README.md": "Quarterly reports go here.\n",
        },
    ),
)


def repository_of(tenant: str) -> DemoRepository:
    return next(repository for repository in REPOSITORIES if repository.tenant == tenant)


def _git(directory: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *IDENTITY, *args],
        cwd=directory,
        env={**os.environ, **GIT_ENV},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def create_bare(repository: DemoRepository, root: Path) -> Path:
    """The bare repository, its `main` holding `files` in one first commit."""
    bare = repository.bare(root)
    bare.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="indorch-demo-seed-") as seed_dir:
        seed = Path(seed_dir)
        _git(seed, "init", "--quiet", "-b", "main")
        for path, content in repository.files.items():
            (seed / path).parent.mkdir(parents=True, exist_ok=True)
            (seed / path).write_text(content)
        _git(seed, "add", "--all")
        _git(seed, "commit", "--quiet", "-m", f"{repository.name}: first commit")
        _git(seed, "clone", "--quiet", "--bare", str(seed), str(bare))
    return bare


def register(database: Database, repository: DemoRepository, url: str, password: str) -> None:
    """The tenant's own credentials (its account on the git server reaches its repositories
    alone) as a tenant secret, then the repository naming it."""
    factory = ServiceFactory(database)
    factory.secrets().set(
        Caller.operator(), repository.tenant, CREDENTIALS_SECRET, f"{repository.tenant}:{password}"
    )
    factory.repositories().register(
        Caller.operator(),
        CodeRepository(
            tenant_id=repository.tenant,
            name=repository.name,
            url=url,
            credentials_secret=CREDENTIALS_SECRET,
        ),
    )


def patch_stat(patch: str) -> str:
    """`N file(s), +added -removed` of a `git diff` (what `git diff --shortstat` counts)."""
    files = added = removed = 0
    in_header = False  # a file's header lines (`--- a/x`, `+++ b/x`) are not changes
    for line in patch.splitlines():
        if line.startswith("diff --git "):
            files, in_header = files + 1, True
        elif line.startswith("@@"):
            in_header = False
        elif not in_header and line.startswith("+"):
            added += 1
        elif not in_header and line.startswith("-"):
            removed += 1
    return f"{files} file{'' if files == 1 else 's'}, +{added} -{removed}"
