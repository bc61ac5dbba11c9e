"""The floor: the agent calls the orchestrator makes for a session, made directly with httpx.

Per session, on one of the servers (round robin): `POST /session`, `POST .../prompt_async`, wait
for `session.idle` on the server's `GET /event` stream (one stream per server), then
`GET .../message` until every assistant message is complete and `GET .../diff` of the first user
message -- what the wave supervisor does, minus the orchestration (no database, no Dagster).
Every session is "submitted" at once; at most `per_server` are in progress on a server at a time
(the summed capacity of the agents the orchestrated runs register on it).

`INDORCH_BENCH_FLOOR_REMADE=1` (isolated only): a directory given back is made again as the
orchestrator makes a slot again (emptied, its repository a copy of the one git first made for
it) instead of `git clean`, which keeps its `.git`: what that costs the servers is then measured.

`INDORCH_BENCH_FLOOR_ORCHESTRATOR_BODIES=1`: each session created as the orchestrator creates
it (its permission rules, a title as long as the orchestrator's), to see whether the servers'
per-session work differs by the request bodies.

`INDORCH_BENCH_FLOOR_OTHER_READERS=N`: N more readers of each server's stream of every directory,
reading and dropping all of it, as the waves of N other tenants sharing the server each read one
(a wave reads that stream once per server): what they cost the server is then measured.

Isolated (`directories` per server): each session works in a scratch directory of its own, as
the orchestrator's default gives it (a git repository with one empty commit, a new OpenCode
instance on its server the first time), at most `directories` of them per server, each reused
by the next session once its files are cleaned (as the orchestrator reuses a warm slot), the
events on one `GET /global/event` stream per server. The floor for the default configuration:
the same agent calls with the same isolation and the same bound on instances, no orchestration.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from domain.ids import new_session_id
from domain.session_permissions import session_rules

IDLE_TIMEOUT_SECONDS = 600.0
OTHER_READERS_VAR = "INDORCH_BENCH_FLOOR_OTHER_READERS"
REMADE_VAR = "INDORCH_BENCH_FLOOR_REMADE"
ORCHESTRATOR_BODIES_VAR = "INDORCH_BENCH_FLOOR_ORCHESTRATOR_BODIES"


def other_readers_from(environment: Mapping[str, str]) -> int:
    value = environment.get(OTHER_READERS_VAR, "0")
    if not value.isdigit():
        raise ValueError(f"{OTHER_READERS_VAR}={value!r}: a count of readers (0, 1, 2, ...)")
    return int(value)


@dataclass
class FloorSession:
    number: int
    server: str
    submitted_at: float
    started_at: float = 0.0  # got a slot on its server
    prompted_at: float = 0.0
    done_at: float = 0.0
    ok: bool = False
    error: str = ""


class _Server:
    def __init__(self, url: str, per_server: int, directories: _Directories | None) -> None:
        limits = httpx.Limits(max_connections=per_server + 8, max_keepalive_connections=per_server)
        self.http = httpx.AsyncClient(base_url=url, timeout=60.0, limits=limits)
        self.events = httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(None, connect=5.0))
        self.directories = directories
        self.slots = asyncio.Semaphore(
            per_server if directories is None else min(per_server, directories.limit)
        )
        self.idle: dict[str, asyncio.Future[None]] = {}
        self.connected = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.other_readers: list[asyncio.Task[None]] = []
        self.as_orchestrator = False  # sessions created with the orchestrator's bodies

    async def follow(self) -> None:
        path = "/event" if self.directories is None else "/global/event"
        async with self.events.stream("GET", path) as response:
            self.connected.set()
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                event = json.loads(line[5:])
                event = event.get("payload", event)  # /global/event wraps it with its directory
                kind = event.get("type")
                props = event.get("properties") or {}
                if kind == "session.idle" or (
                    kind == "session.status" and (props.get("status") or {}).get("type") == "idle"
                ):
                    future = self.idle.get(props.get("sessionID", ""))
                    if future is not None and not future.done():
                        future.set_result(None)

    async def read_and_drop(self) -> None:
        """Another tenant's wave on this server, as far as the server can tell."""
        async with self.events.stream("GET", "/global/event") as response:
            async for _ in response.aiter_raw():
                pass

    async def close(self) -> None:
        for task in [self.task, *self.other_readers]:
            if task is None:
                continue
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                await task
        await self.http.aclose()
        await self.events.aclose()


class _Directories:
    """A server's scratch directories: made on first need, at most `limit`, each reused."""

    def __init__(self, root: Path, limit: int, remade: bool = False) -> None:
        self.root = root
        self.limit = limit
        self.remade = remade
        self._free: list[Path] = []
        self._made = 0

    async def take(self) -> Path:
        if self._free:
            return self._free.pop()
        self._made += 1
        directory = self.root / f"slot-{self._made}"
        await asyncio.to_thread(_init_scratch, directory)
        if self.remade:
            await asyncio.to_thread(shutil.copytree, directory / ".git", self._kept(directory))
        return directory

    async def give_back(self, directory: Path) -> None:
        if self.remade:
            await asyncio.to_thread(_made_again, directory, self._kept(directory))
        else:
            await asyncio.to_thread(_git, directory, "clean", "-fdxq")  # its files gone
        self._free.append(directory)

    def _kept(self, directory: Path) -> Path:
        return self.root / "kept" / directory.name


def _create_body(number: int, as_orchestrator: bool) -> dict[str, Any]:
    if not as_orchestrator:
        return {"title": f"floor {number}"}
    title = f"{new_session_id()} Note {number}."  # the orchestrator's: "<session id> <title>"
    return {"title": title, "permission": session_rules()}


def _made_again(directory: Path, kept: Path) -> None:
    shutil.rmtree(directory)
    directory.mkdir()
    shutil.copytree(kept, directory / ".git", symlinks=True)


def _git(directory: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(directory), *args], check=True, capture_output=True)


def _init_scratch(directory: Path) -> None:
    """As the orchestrator makes a scratch workspace: a repository with one empty commit."""
    directory.mkdir(parents=True)
    _git(directory, "init", "-q", "-b", "main")
    _git(
        directory,
        "-c",
        "user.name=floor",
        "-c",
        "user.email=floor@localhost",
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        f"scratch {directory.name}",
    )


async def _one(server: _Server, record: FloorSession, prompt: str) -> None:
    async with server.slots:
        record.started_at = time.time()
        directory = await server.directories.take() if server.directories else None
        params = {"directory": str(directory)} if directory else None
        try:
            created = await server.http.post(
                "/session", params=params, json=_create_body(record.number, server.as_orchestrator)
            )
            created.raise_for_status()
            session_id = created.json()["id"]
            idle = asyncio.get_running_loop().create_future()
            server.idle[session_id] = idle
            body = {"parts": [{"type": "text", "text": prompt}], "agent": "build"}
            sent = await server.http.post(
                f"/session/{session_id}/prompt_async", params=params, json=body
            )
            sent.raise_for_status()
            record.prompted_at = time.time()
            await asyncio.wait_for(idle, IDLE_TIMEOUT_SECONDS)
            messages = await _answered_messages(server.http, session_id, params)
            first_user = next(m for m in messages if m["info"]["role"] == "user")
            diff = await server.http.get(
                f"/session/{session_id}/diff",
                params={**(params or {}), "messageID": first_user["info"]["id"]},
            )
            diff.raise_for_status()
            record.ok = not any(m["info"].get("error") for m in messages)
        except Exception as error:  # a failed session is counted, never hidden
            record.error = repr(error)[:300]
        finally:
            if directory is not None and server.directories is not None:
                await server.directories.give_back(directory)
            record.done_at = time.time()


async def _answered_messages(
    http: httpx.AsyncClient, session_id: str, params: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """`session.idle` comes before the last assistant message is final: read until it is."""
    while True:
        response = await http.get(f"/session/{session_id}/message", params=params)
        response.raise_for_status()
        messages = response.json()
        replies = [m for m in messages if m["info"]["role"] == "assistant"]
        if replies and all((m["info"].get("time") or {}).get("completed") for m in replies):
            return messages
        await asyncio.sleep(0.05)


async def run_floor(
    urls: list[str],
    sessions: int,
    per_server: int,
    prompt_for: Any,
    *,
    directories: int = 0,
    scratch: Path | None = None,
    other_readers: int = 0,
    remade: bool = False,
    orchestrator_bodies: bool = False,
) -> list[dict[str, Any]]:
    """`directories` (with `scratch`, where they are made): the isolated floor; `other_readers`
    per server, `remade`, `orchestrator_bodies` (module doc)."""
    servers = [
        _Server(
            url,
            per_server,
            _Directories(scratch / f"server-{n}", directories, remade)
            if directories and scratch
            else None,
        )
        for n, url in enumerate(urls)
    ]
    try:
        for server in servers:
            server.as_orchestrator = orchestrator_bodies
            server.task = asyncio.create_task(server.follow())
            await asyncio.wait_for(server.connected.wait(), 10.0)
            server.other_readers = [
                asyncio.create_task(server.read_and_drop()) for _ in range(other_readers)
            ]
        started = time.time()
        records = [FloorSession(n, urls[n % len(urls)], started) for n in range(sessions)]
        await asyncio.gather(
            *(_one(servers[r.number % len(servers)], r, prompt_for(r.number)) for r in records)
        )
        return [asdict(record) for record in records]
    finally:
        for server in servers:
            await server.close()
