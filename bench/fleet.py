"""The agent side of the bench: the scripted model and K real OpenCode servers.

Both run as processes of their own, outside the measured control plane: the model as
`python -m standins.scripted_model` (instant answers; `[script:slow seconds=S]` holds a reply),
the servers as real `opencode serve` processes, each with a HOME and a workspace of its own, both
new at every (re)start. Each server is warmed up with one session before anything is measured
(its first prompt loads plugins and catalogs, and installs the provider package, ~2 s).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.procstat import read_proc
from standins.opencode_server import PROJECT_ROOT, OpenCodeServer, find_opencode_binary, free_port

MODEL_START_TIMEOUT_SECONDS = 30.0
WARM_UP_TIMEOUT_SECONDS = 120.0


@dataclass
class Fleet:
    scratch: Path
    model_url: str = ""
    servers: list[OpenCodeServer] = field(default_factory=list)
    _model: subprocess.Popen[bytes] | None = None
    _model_log: object = None
    _homes_made: Counter[int] = field(default_factory=Counter)

    @property
    def urls(self) -> list[str]:
        return [server.url for server in self.servers]

    def start(self, count: int) -> Fleet:
        port = free_port()
        self.model_url = f"http://127.0.0.1:{port}"
        self._model_log = (self.scratch / "scripted_model.log").open("wb")
        self._model = subprocess.Popen(
            [sys.executable, "-m", "standins.scripted_model", "--port", str(port)],
            cwd=PROJECT_ROOT,
            stdout=self._model_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _wait_for(f"{self.model_url}/v1/models", MODEL_START_TIMEOUT_SECONDS)
        self._start_servers(count)
        return self

    def _start_servers(self, count: int) -> None:
        binary = find_opencode_binary()
        # Each server its own HOME, as each agent machine (or managed runtime) has: a HOME holds
        # the server's SQLite storage, and three servers writing one file at a 300-session burst
        # waited on its lock with their event loops blocked ("database is locked"; health
        # checks timed out, sessions ORPHANED). Each installs the provider package on warm-up.
        self.servers = [
            OpenCodeServer(self.model_url, home=self.next_home(number), binary=binary)
            for number in range(count)
        ]
        with ThreadPoolExecutor(max_workers=count) as pool:
            list(pool.map(lambda server: server.start(), self.servers))
            list(pool.map(lambda server: warm_up(server.url), self.servers))

    def next_home(self, number: int) -> Path:
        """A HOME never used before for server `number`: a HOME holds the server's storage
        (every session it ran), and a server grows slower with the sessions it holds, so a
        restart on the old one would measure each later scenario on slower servers."""
        self._homes_made[number] += 1
        return self.scratch / f"opencode-home-{number}-{self._homes_made[number]}"

    def restart_servers(self) -> None:
        """Fresh servers (new workspaces, no session history), so every scenario starts alike."""
        count = len(self.servers)
        for server in self.servers:
            server.stop()
        httpx.post(f"{self.model_url}/_scripted/reset", timeout=10.0)
        self._start_servers(count)

    def stop(self) -> None:
        for server in self.servers:
            with contextlib.suppress(Exception):
                server.stop()
        if self._model is not None:
            self._model.terminate()
            try:
                self._model.wait(10)
            except subprocess.TimeoutExpired:
                self._model.kill()
                self._model.wait(10)
            self._model = None
        if self._model_log is not None:
            self._model_log.close()  # type: ignore[attr-defined]
            self._model_log = None

    def agent_side_rss_mb(self) -> dict[str, float]:
        """Resident memory of each OpenCode server (informational: not control plane)."""
        out: dict[str, float] = {}
        for server in self.servers:
            info = read_proc(server.pid) if server.pid else None
            out[server.url] = round(info.rss_mb, 1) if info else 0.0
        if self._model is not None and (info := read_proc(self._model.pid)) is not None:
            out["scripted-model"] = round(info.rss_mb, 1)
        return out

    def agent_side_cpu_seconds(self) -> float:
        """CPU time the servers and the model have used so far (informational)."""
        return sum(self.agent_side_cpu_by_role().values())

    def agent_side_cpu_by_role(self) -> dict[str, float]:
        """The same, the servers' (their reaped children, git, included) and the model's."""
        servers = [server.pid for server in self.servers if server.pid]
        model = [self._model.pid] if self._model is not None else []
        return {"servers": _cpu_of(servers), "model": _cpu_of(model)}


def _cpu_of(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        info = read_proc(pid)
        total += info.cpu_seconds + info.children_cpu_seconds if info else 0.0
    return total


def _wait_for(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer within {timeout:g} s")
        time.sleep(0.2)


def warm_up(url: str, auth: tuple[str, str] | None = None) -> None:
    """One two-turn session to its end, so later sessions do not pay the first-prompt cost
    (`auth`: a managed runtime's Basic credentials)."""
    with httpx.Client(base_url=url, timeout=30.0, auth=auth) as client:
        session_id = client.post("/session", json={"title": "warm-up"}).json()["id"]
        prompt = '[script:write path=warm-up.md content="warm\\n"] Warm up.'
        body = {"parts": [{"type": "text", "text": prompt}], "agent": "build"}
        client.post(f"/session/{session_id}/prompt_async", json=body).raise_for_status()
        deadline = time.monotonic() + WARM_UP_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            messages = client.get(f"/session/{session_id}/message").json()
            replies = [m for m in messages if m["info"]["role"] == "assistant"]
            done = [m for m in replies if (m["info"].get("time") or {}).get("completed")]
            if (
                replies
                and len(done) == len(replies)
                and replies[-1]["info"].get("finish") == "stop"
            ):
                return
            time.sleep(0.3)
        raise RuntimeError(f"warm-up session on {url} did not finish: {json.dumps(messages)[:500]}")
