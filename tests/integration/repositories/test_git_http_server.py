"""The stand-in git server with an account per tenant: each account reaches only its own
directory's repositories, as a hosted git server's per-organisation credentials do, so the demo's
tenants do not share one credential. Attacked as a hostile tenant would: the other's repository
with its own credentials, a `..` path out of its directory, no credentials at all."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import pytest

from standins.git_http_server import GitHttpServer
from tests.integration.repositories.support import GIT_ENV, bare_remote

ACME = ("acme", "acme-pa55")
GLOBEX = ("globex", "globex-pa55")


@pytest.fixture
def server(tmp_path: Path):
    root = tmp_path / "served"
    for tenant in ("acme", "globex"):
        bare_remote(root / tenant, name="repo")
    with GitHttpServer(root, accounts={"acme": ACME, "globex": GLOBEX}) as served:
        yield served


def clone(url: str, account: tuple[str, str], into: Path) -> subprocess.CompletedProcess[str]:
    user, password = account
    with_credentials = url.replace("http://", f"http://{user}:{password}@", 1)
    return subprocess.run(
        ["git", "clone", "--quiet", with_credentials, str(into)],
        env={**os.environ, **GIT_ENV, "GIT_TERMINAL_PROMPT": "0"},
        capture_output=True,
        text=True,
        check=False,
    )


def test_an_account_clones_its_own_repository(server: GitHttpServer, tmp_path: Path) -> None:
    done = clone(f"{server.url}/acme/repo.git", ACME, tmp_path / "mine")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "mine" / "README.md").read_text() == "# project\n"


def test_an_account_is_refused_the_other_tenant_s_repository(
    server: GitHttpServer, tmp_path: Path
) -> None:
    done = clone(f"{server.url}/globex/repo.git", ACME, tmp_path / "theirs")
    assert done.returncode != 0
    assert not (tmp_path / "theirs" / "README.md").exists()
    answer = httpx.get(f"{server.url}/globex/repo.git/info/refs?service=git-upload-pack", auth=ACME)
    assert answer.status_code == 404  # as if it did not exist


@pytest.mark.parametrize(
    "path",
    ["/acme/../globex/repo.git", "/acme/%2e%2e/globex/repo.git", "//globex/repo.git"],
)
def test_a_path_out_of_the_account_s_directory_is_refused(server: GitHttpServer, path: str) -> None:
    answer = httpx.get(f"{server.url}{path}/info/refs?service=git-upload-pack", auth=ACME)
    assert answer.status_code == 404
    assert b"refs/heads/main" not in answer.content


def test_no_or_wrong_credentials_are_challenged(server: GitHttpServer) -> None:
    url = f"{server.url}/acme/repo.git/info/refs?service=git-upload-pack"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, auth=("acme", GLOBEX[1])).status_code == 401
    assert server.requests_refused == 2


def test_one_account_for_every_repository_still_works(tmp_path: Path) -> None:
    root = tmp_path / "served"
    bare_remote(root, name="project")
    with GitHttpServer(root, username="ann", password="s3cret") as served:
        done = clone(f"{served.url}/project.git", ("ann", "s3cret"), tmp_path / "clone")
    assert done.returncode == 0, done.stderr
