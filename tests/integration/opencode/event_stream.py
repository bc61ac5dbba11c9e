"""Following an OpenCode server's ``GET /event`` stream in tests, and reducing it to a lifecycle.

One :class:`EventStream` per server (not per session), as the wave supervisor will do: a
background thread reads the SSE stream (``data: {"id", "type", "properties"}`` lines) with plain
httpx and keeps every event; tests wait for events of their session. The same reader follows
``GET /event?directory=...`` (one directory's events) and ``GET /global/event`` (every
directory's, each wrapped as ``{"directory", "project", "payload": {"id", "type", ...}}``):
:func:`payload_of` unwraps either shape.

:func:`lifecycle` reduces one session's events to the states a supervisor acts on
(``status:busy``, ``status:retry``, ``error:<name>``, ``status:idle``, ``idle``), consecutive
repeats merged, up to the first ``session.idle``; the recorded traces in ``traces/`` reduce the
same way, so a test can compare the real server with the reference recording.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import httpx

Event = dict[str, Any]
TRACES = Path(__file__).parent / "traces"
CONNECT_TIMEOUT_SECONDS = 15.0


def payload_of(event: Event) -> Event:
    """The event itself (``/event``) or its ``payload`` (a ``/global/event`` envelope)."""
    payload = event.get("payload")
    return payload if isinstance(payload, dict) and "type" not in event else event


def session_of(event: Event) -> str | None:
    properties = payload_of(event).get("properties") or {}
    if "sessionID" in properties:
        return properties["sessionID"]
    info = properties.get("info") or properties.get("part") or {}
    return info.get("sessionID")


class EventStream:
    """A background reader of ``GET /event``; thread-safe access to what it has seen."""

    def __init__(
        self,
        base_url: str,
        auth: tuple[str, str] | None = None,
        path: str = "/event",
        params: dict[str, str] | None = None,
    ) -> None:
        self._client = httpx.Client(
            base_url=base_url, auth=auth, timeout=httpx.Timeout(10.0, read=None)
        )
        self._path = path
        self._params = params
        self._events: list[Event] = []
        self._condition = threading.Condition()
        self._finished = False
        self._closing = False
        self._socket: socket.socket | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._read, name="opencode-events", daemon=True)

    def start(self) -> EventStream:
        self._thread.start()
        self.wait_for(
            lambda event: payload_of(event)["type"] == "server.connected", CONNECT_TIMEOUT_SECONDS
        )
        return self

    def _read(self) -> None:
        try:
            with self._client.stream("GET", self._path, params=self._params) as response:
                response.raise_for_status()
                network_stream = response.extensions.get("network_stream")
                if network_stream is not None:
                    self._socket = network_stream.get_extra_info("socket")
                for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    event = json.loads(line[len("data:") :])
                    with self._condition:
                        self._events.append(event)
                        self._condition.notify_all()
        except BaseException as error:  # the test thread reports it
            if not self._closing:
                self.error = error
        finally:
            with self._condition:
                self._finished = True
                self._condition.notify_all()

    def close(self) -> None:
        """Stop reading: shut the socket down (wakes the blocked read), close the client."""
        self._closing = True
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.shutdown(socket.SHUT_RDWR)
        self._thread.join(2.0)
        self._client.close()

    def events(self, session_id: str | None = None) -> list[Event]:
        with self._condition:
            events = list(self._events)
        if session_id is None:
            return events
        return [event for event in events if session_of(event) == session_id]

    def wait_for(
        self, predicate: Callable[[Event], bool], timeout: float, what: str = "event"
    ) -> Event:
        """The first event (old or new) matching ``predicate``; AssertionError after ``timeout``."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._condition:
            while True:
                for event in self._events[seen:]:
                    if predicate(event):
                        return event
                seen = len(self._events)
                remaining = deadline - time.monotonic()
                if self._finished or remaining <= 0:
                    break
                self._condition.wait(remaining)
        tail = [summary(event) for event in self._events[-25:]]
        raise AssertionError(
            f"no {what} within {timeout:g}s (stream finished={self._finished}, "
            f"error={self.error!r}); last events:\n" + "\n".join(tail)
        )

    def wait_for_session(self, session_id: str, event_type: str, timeout: float = 30.0) -> Event:
        return self.wait_for(
            lambda event: (
                payload_of(event)["type"] == event_type and session_of(event) == session_id
            ),
            timeout,
            f"{event_type} of {session_id}",
        )

    def wait_for_message_diff(
        self, session_id: str, message_id: str, timeout: float = 30.0
    ) -> list[dict[str, Any]]:
        """The diff of a user message as the server stores it once its turn is over.

        The server computes a user message's diff (``summary.diffs``, what
        ``GET /session/{id}/diff?messageID=`` answers) in the background after each step of
        the turn, the last time just after ``session.idle``, and announces each result as a
        ``message.updated`` of that message (``session.diff`` is no such signal: each run
        announces it empty before computing). Before the first result the diff is empty, and it
        stays empty for good if the directory's instance is disposed meanwhile (its worktree
        removed: the runs are interrupted): wait for the result announced after the idle.
        """
        idle_seen = False

        def computed_after_idle(event: Event) -> bool:
            nonlocal idle_seen  # the events are offered in order, each once
            if session_of(event) != session_id:
                return False
            payload = payload_of(event)
            if payload["type"] == "session.idle":
                idle_seen = True
            info = payload.get("properties", {}).get("info") or {}
            return (
                idle_seen
                and payload["type"] == "message.updated"
                and info.get("id") == message_id
                and "summary" in info
            )

        event = self.wait_for(computed_after_idle, timeout, f"the diff of {message_id} after idle")
        return payload_of(event)["properties"]["info"]["summary"]["diffs"]


def summary(event: Event) -> str:
    payload = payload_of(event)
    where = f"[{event['directory']}] " if "directory" in event else ""
    return f"{where}{payload['type']} {json.dumps(payload.get('properties'))[:200]}"


def lifecycle(events: Iterable[Event], session_id: str) -> list[str]:
    """The session's supervisor-relevant states, repeats merged, up to the first ``idle``."""
    states: list[str] = []
    for event in events:
        if session_of(event) != session_id:
            continue
        event = payload_of(event)
        properties = event["properties"]
        if event["type"] == "session.status":
            state = f"status:{properties['status']['type']}"
        elif event["type"] == "session.error":
            state = f"error:{properties['error']['name']}"
        elif event["type"] == "session.idle":
            state = "idle"
        else:
            continue
        if not states or states[-1] != state:
            states.append(state)
        if state == "idle":
            break
    return states


def recorded_events(trace_name: str) -> list[Event]:
    """The events of a recorded trace in ``traces/`` (real OpenCode 1.18.33, a mock model)."""
    lines = (TRACES / trace_name).read_text().splitlines()
    return [json.loads(line[len("data:") :]) for line in lines if line.startswith("data:")]


def recorded_session(events: list[Event], first_prompt: str) -> str:
    """The id of the recorded session whose first user text part is ``first_prompt``."""
    for event in events:
        part = (event.get("properties") or {}).get("part") or {}
        if event["type"] == "message.part.updated" and part.get("text") == first_prompt:
            return part["sessionID"]
    raise LookupError(f"no recorded session prompted with {first_prompt!r}")


def recorded_lifecycle(trace_name: str, first_prompt: str) -> list[str]:
    events = recorded_events(trace_name)
    return lifecycle(events, recorded_session(events, first_prompt))
