"""A reference external agent (EAP v1): takes a task at `POST /tasks`, posts a result back.

    agent = ReferenceAgent()
    with BackgroundServer(agent.app) as server:      # its endpoint: f"{server.url}/tasks"
        ... register it through the API (the token comes back once) ...
        agent.connect(api_url, tenant_id, token)       # heart-beats every `heartbeat_seconds`
        ... the platform assigns a session: the agent answers 202, then posts its result ...

It checks each assignment's signature (HMAC-SHA256 over "<timestamp>.<body>" keyed with the
SHA-256 of its token) and refuses a bad or stale one with 401. Its "work": the result's output
is `done: <title>`; a prompt holding `[eap:fail]` is reported failed. `refuse_next(n)` answers
503 to the next n assignments (the platform retries). `stop_heartbeats()` makes it go silent;
`vanish_after_next_task()` makes it die holding its next task; `hold_results()` keeps it
working on its tasks (beating, no result).
`python -m standins.eap_agent --port N --api URL --tenant T` (token in `EAP_AGENT_TOKEN`).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import os
import threading
import time
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

FAIL_MARKER = "[eap:fail]"


class ReferenceAgent:
    def __init__(self, heartbeat_seconds: float = 0.2) -> None:
        self.heartbeat_seconds = heartbeat_seconds
        self.assignments: list[dict[str, Any]] = []  # every assignment it accepted
        self.refused: list[str] = []  # why it refused the ones it refused
        self.results: list[tuple[int, dict[str, Any]]] = []  # (API's status, its answer)
        self.heartbeats = 0
        self._api_url = ""
        self._tenant = ""
        self._token = ""
        self._refuse = 0
        self._vanish = False
        self._hold = False
        self._beating = threading.Event()
        self._lock = threading.Lock()
        self.app = Starlette(routes=[Route("/tasks", self._task, methods=["POST"])])

    def connect(self, api_url: str, tenant_id: str, token: str) -> None:
        """Talk to the platform at `api_url` as the agent of `tenant_id` holding `token`;
        beat once now (so it is in routing at once), then every `heartbeat_seconds`."""
        self._api_url, self._tenant, self._token = api_url.rstrip("/"), tenant_id, token
        self.beat()
        self._beating.set()
        threading.Thread(target=self._beat_loop, name="eap-heartbeat", daemon=True).start()

    def stop_heartbeats(self) -> None:
        self._beating.clear()

    def hold_results(self) -> None:
        """Accept assignments and keep beating, but post no result (a long task)."""
        self._hold = True

    def vanish_after_next_task(self) -> None:
        """Accept the next assignment, then go silent: no heartbeat, no result (it died)."""
        self._vanish = True

    def refuse_next(self, count: int) -> None:
        with self._lock:
            self._refuse = count

    def beat(self) -> int:
        answer = httpx.post(f"{self._api_url}/api/v1/eap/heartbeat", headers=self._headers())
        if answer.status_code == 200:
            self.heartbeats += 1
        return answer.status_code

    def _beat_loop(self) -> None:
        while self._beating.is_set():
            time.sleep(self.heartbeat_seconds)
            if self._beating.is_set():
                with contextlib.suppress(httpx.HTTPError):  # the next beat tries again
                    self.beat()

    def _headers(self) -> dict[str, str]:
        return {"X-Agent-Token": self._token, "X-Tenant-ID": self._tenant}

    async def _task(self, request: Request) -> JSONResponse:
        body = await request.body()
        if not self._signed(request, body):
            self.refused.append("bad signature")
            return JSONResponse({"error": "bad signature"}, status_code=401)
        with self._lock:
            if self._refuse > 0:
                self._refuse -= 1
                self.refused.append("busy")
                return JSONResponse({"error": "busy"}, status_code=503)
        assignment = await request.json()
        if any(a["assignment_id"] == assignment["assignment_id"] for a in self.assignments):
            return JSONResponse({"accepted": True, "repeat": True}, status_code=202)
        self.assignments.append(assignment)
        if self._vanish:
            self.stop_heartbeats()
        if self._vanish or self._hold:
            return JSONResponse({"accepted": True}, status_code=202)
        return JSONResponse(
            {"accepted": True}, status_code=202, background=BackgroundTask(self._work, assignment)
        )

    def _signed(self, request: Request, body: bytes) -> bool:
        if not self._token:
            return False
        timestamp = request.headers.get("X-EAP-Timestamp", "")
        presented = request.headers.get("X-EAP-Signature", "")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > 300:
            return False
        key = hashlib.sha256(self._token.encode()).hexdigest().encode()
        expected = "sha256=" + hmac.new(key, timestamp.encode() + b"." + body, "sha256").hexdigest()
        return hmac.compare_digest(expected, presented)

    async def _work(self, assignment: dict[str, Any]) -> None:
        failed = FAIL_MARKER in assignment["prompt"]
        result = {
            "assignment_id": assignment["assignment_id"],
            "status": "failed" if failed else "completed",
            "output": "" if failed else f"done: {assignment['title']}",
            "error": "the reference agent was told to fail" if failed else None,
            "data": {"prompt_chars": len(assignment["prompt"])},
            "tokens_in": len(assignment["prompt"]),
            "tokens_out": 7,
            "cost_usd": 0.001,
        }
        async with httpx.AsyncClient() as client:
            answer = await client.post(
                f"{self._api_url}{assignment['result_path']}", json=result, headers=self._headers()
            )
        self.results.append((answer.status_code, answer.json()))


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--api", required=True, help="the platform's API, e.g. http://127.0.0.1:8000"
    )
    parser.add_argument("--tenant", required=True)
    args = parser.parse_args()
    agent = ReferenceAgent(heartbeat_seconds=15)
    agent.connect(args.api, args.tenant, os.environ["EAP_AGENT_TOKEN"])
    uvicorn.run(agent.app, host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
