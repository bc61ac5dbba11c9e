"""A git server over HTTP with Basic credentials: `git http-backend` (git's own smart-HTTP CGI)
behind a small threaded HTTP server, for tests and demos of repositories that need credentials.

    with GitHttpServer(root, username="ann", password="s3cret") as server:
        url = f"{server.url}/project.git"      # serves <root>/project.git (a bare repository)

    # an account per directory: acme's credentials reach <root>/acme/* only (404 elsewhere)
    with GitHttpServer(root, accounts={"acme": ("acme", "pw1"), "globex": ("globex", "pw2")}):

Every request needs the credentials (401 with a `WWW-Authenticate` challenge otherwise, as a
hosted git server answers), pushes included (`http.receivepack` is enabled on the served
repositories). `python -m standins.git_http_server --root DIR --port 8418 --username U
--password-env VAR` runs it on its own; `--accounts-env VAR` instead (a JSON object
`{"directory": ["user", "password"], ...}` in the variable) for an account per directory.
"""

from __future__ import annotations

import argparse
import base64
import hmac
import json
import os
import subprocess
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

BACKEND = "/usr/lib/git-core/git-http-backend"


# An accepted `Authorization` header -> the directory under the root it reaches (None: all).
Grants = dict[str, str | None]


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


class GitHttpServer:
    def __init__(
        self,
        root: Path,
        *,
        username: str | None = None,
        password: str | None = None,
        accounts: Mapping[str, tuple[str, str]] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        """`username`/`password`: one account reaching every repository under `root`;
        `accounts`: `{directory: (username, password)}`, each account reaching only the
        repositories under `root/<directory>`."""
        grants: Grants = {}
        if username is not None and password is not None:
            grants[_basic(username, password)] = None
        for directory, (user, secret) in (accounts or {}).items():
            grants[_basic(user, secret)] = directory
        if not grants:
            raise ValueError("GitHttpServer needs username and password, or accounts")
        self.root = root
        handler = _handler(root, grants)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None
        self.requests_refused = 0  # answered 401 (no or wrong credentials)
        handler.server_stats = self  # type: ignore[attr-defined]

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> str:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> GitHttpServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _granted(grants: Grants, given: str) -> tuple[bool, str | None]:
    """Whether `given` is an accepted header, and the directory it reaches (every header
    compared in constant time)."""
    found, reach = False, None
    for header, directory in grants.items():
        if hmac.compare_digest(given.encode(), header.encode()):
            found, reach = True, directory
    return found, reach


def _within(path: str, directory: str | None) -> bool:
    """`path` (decoded) names a repository under `directory`: no `..`, no empty segment that
    would let git's project root resolve elsewhere."""
    segments = unquote(path).split("/")[1:]
    if not segments or any(segment in ("", ".", "..") for segment in segments):
        return False
    return directory is None or segments[0] == directory


def _handler(root: Path, grants: Grants) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_stats: GitHttpServer

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet: tests read the answers, not the log

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def _serve(self) -> None:
            known, reach = _granted(grants, self.headers.get("Authorization", ""))
            if not known:
                self.server_stats.requests_refused += 1
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="git"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            parts = urlsplit(self.path)
            if not _within(parts.path, reach):
                self.send_response(404)  # another account's repository: as if it did not exist
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "GIT_PROJECT_ROOT": str(root),
                "GIT_HTTP_EXPORT_ALL": "1",
                "REMOTE_USER": "git",
                "REQUEST_METHOD": self.command,
                "PATH_INFO": parts.path,
                "QUERY_STRING": parts.query,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(len(body)),
                "GIT_CONFIG_COUNT": "1",
                "GIT_CONFIG_KEY_0": "http.receivepack",
                "GIT_CONFIG_VALUE_0": "true",
            }
            if self.headers.get("Content-Encoding"):
                env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
            if self.headers.get("Git-Protocol"):
                env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
            done = subprocess.run([BACKEND], input=body, env=env, capture_output=True, check=False)
            head, _, payload = done.stdout.partition(b"\r\n\r\n")
            if not _ and b"\n\n" in done.stdout:
                head, _, payload = done.stdout.partition(b"\n\n")
            status = 200
            headers: list[tuple[str, str]] = []
            for line in head.decode(errors="replace").splitlines():
                name, _, value = line.partition(":")
                if name.lower() == "status":
                    status = int(value.strip().split()[0])
                elif name:
                    headers.append((name.strip(), value.strip()))
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="Directory of bare repositories.")
    parser.add_argument("--port", type=int, default=8418)
    parser.add_argument("--username")
    parser.add_argument("--password-env", help="Variable holding the password.")
    parser.add_argument(
        "--accounts-env",
        help='Variable holding {"directory": ["user", "password"], ...}: an account per directory.',
    )
    args = parser.parse_args()
    accounts = json.loads(os.environ[args.accounts_env]) if args.accounts_env else {}
    if not accounts and not (args.username and args.password_env):
        parser.error("give --username and --password-env, or --accounts-env")
    server = GitHttpServer(
        args.root,
        username=args.username,
        password=os.environ[args.password_env] if args.password_env else None,
        accounts={directory: (user, secret) for directory, (user, secret) in accounts.items()},
        port=args.port,
    )
    print(f"git over HTTP on {server.url}, serving {args.root}", flush=True)
    server._server.serve_forever()


if __name__ == "__main__":
    main()
