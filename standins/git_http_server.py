"""A git server over HTTP with Basic credentials: `git http-backend` (git's own smart-HTTP CGI)
behind a small threaded HTTP server, for tests and demos of repositories that need credentials.

    with GitHttpServer(root, username="ann", password="s3cret") as server:
        url = f"{server.url}/project.git"      # serves <root>/project.git (a bare repository)

Every request needs the credentials (401 with a `WWW-Authenticate` challenge otherwise, as a
hosted git server answers), pushes included (`http.receivepack` is enabled on the served
repositories). `python -m standins.git_http_server --root DIR --port 8418 --username U
--password-env VAR` runs it on its own.
"""

from __future__ import annotations

import argparse
import base64
import hmac
import os
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

BACKEND = "/usr/lib/git-core/git-http-backend"


class GitHttpServer:
    def __init__(
        self, root: Path, *, username: str, password: str, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.root = root
        expected = base64.b64encode(f"{username}:{password}".encode()).decode()
        handler = _handler(root, f"Basic {expected}")
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


def _handler(root: Path, expected_auth: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_stats: GitHttpServer

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet: tests read the answers, not the log

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def _serve(self) -> None:
            given = self.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), expected_auth.encode()):
                self.server_stats.requests_refused += 1
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="git"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            parts = urlsplit(self.path)
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
    parser.add_argument("--username", required=True)
    parser.add_argument("--password-env", required=True, help="Variable holding the password.")
    args = parser.parse_args()
    server = GitHttpServer(
        args.root, username=args.username, password=os.environ[args.password_env], port=args.port
    )
    print(f"git over HTTP on {server.url}, serving {args.root}", flush=True)
    server._server.serve_forever()


if __name__ == "__main__":
    main()
