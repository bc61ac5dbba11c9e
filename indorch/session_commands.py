"""`indorch session ...`: submit coding sessions, watch them, steer them.

Everything goes through `SessionService`, the path the sensors and the API share. Nothing here
runs a session: the Dagster daemon's dispatcher picks PENDING sessions up. `--wait` and
`events --follow` poll the database every half second.

Exit codes beyond main's: `submit --wait` exits 0 when the session COMPLETED or
PARTIALLY_COMPLETED, 1 when it ended otherwise, 3 when the wait timed out (the session goes on).

`message IND-... "text"` sends a follow-up: queued while the session works, delivered to its agent
when the current turn ends; to a session that has ended, a new child session continuing it.

`submit --subtask "title::prompt"` (repeatable, each after the one before), `--subtasks-file F`
(a JSON list of subtasks with explicit `depends_on`) or `--decompose` (the rule-based decomposer)
submit a decomposed request: a coordinating parent that ends when its child sessions have.
"""

from __future__ import annotations

import json
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from domain.caller import Caller
from domain.errors import InvalidInput
from domain.events import SessionEvent
from domain.session import (
    ATTEMPTS_KEY,
    RETRYABLE_STATES,
    TITLE_MAX,
    Priority,
    Session,
    SessionStatus,
    SessionType,
)
from indorch.context import service_factory, tenant_database
from indorch.output import console, print_error, print_record, print_rows, print_warning

if TYPE_CHECKING:
    from domain.decomposition import SubtaskSpec
    from resources.database import Database
    from services.session_service import SessionService

session_app = typer.Typer(
    help="Submit, watch and steer a tenant's coding sessions.", no_args_is_help=True
)
TENANT_OPTION = typer.Option(..., "--tenant", "-t", help="Tenant slug.")
JSON_OPTION = typer.Option(False, "--json", help="Print JSON.")
REASON_OPTION = typer.Option(None, "--reason", help="Why (recorded with the transition).")
SESSION_ARGUMENT = typer.Argument(..., help="IND-... id.")
COLUMNS = ("id", "title", "status", "priority", "type", "attempt", "agent", "tokens", "cost")
EVENT_COLUMNS = ("seq", "at", "event", "change", "reason", "data")
POLL_SECONDS = 0.5
SUCCESS = frozenset({SessionStatus.COMPLETED, SessionStatus.PARTIALLY_COMPLETED})
EXIT_ENDED_OTHERWISE = 1
EXIT_WAIT_TIMED_OUT = 3
MAX_LIST_LIMIT = 1000
SHOWN_TEXT_CHARS = 500


def _service(database: Database, *, steering: bool = False) -> SessionService:
    """The service the sensors and the API use (see `indorch.context.service_factory`)."""
    return service_factory(database, steering=steering).sessions()


# -- parsing --------------------------------------------------------------------------------------


def _priority(value: str) -> Priority:
    key = value.strip().upper()
    if key in Priority.__members__:
        return Priority[key]
    if key in {str(int(p)) for p in Priority}:
        return Priority(int(key))
    names = ", ".join(Priority.__members__)
    raise InvalidInput("priority", f"{value!r} must be one of {names} (or 0-4)")


def _session_type(value: str) -> SessionType:
    try:
        return SessionType(value.strip().lower())
    except ValueError:
        names = ", ".join(t.value for t in SessionType)
        raise InvalidInput("type", f"{value!r} must be one of {names}") from None


def _status(value: str) -> SessionStatus:
    try:
        return SessionStatus(value.strip().upper())
    except ValueError:
        names = ", ".join(SessionStatus)
        raise InvalidInput("status", f"{value!r} must be one of {names}") from None


def _read_prompt(prompt: str | None, prompt_file: str | None) -> str:
    if (prompt is None) == (prompt_file is None):
        raise InvalidInput("prompt", "give exactly one of --prompt and --prompt-file")
    if prompt is not None:
        return prompt
    if prompt_file == "-":
        return sys.stdin.read()
    try:
        return Path(prompt_file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise InvalidInput("prompt-file", f"cannot read {prompt_file}: {reason}") from None


def _subtasks(given: list[str], subtasks_file: str | None) -> list[SubtaskSpec]:
    """`--subtask "title::prompt"` values (each after the one before), or a JSON file's list."""
    from domain.decomposition import subtask_at

    if given and subtasks_file is not None:
        raise InvalidInput("subtask", "give --subtask or --subtasks-file, not both")
    if subtasks_file is None:
        specs = []
        for index, value in enumerate(given):
            title, separator, text = value.partition("::")
            title, text = (title, text) if separator else (default_title(value), value)
            depends_on: list[str | int] = [index - 1] if index else []
            specs.append(
                subtask_at(index, {"title": title, "prompt": text, "depends_on": depends_on})
            )
        return specs
    try:
        raw = sys.stdin.read() if subtasks_file == "-" else Path(subtasks_file).read_text("utf-8")
        items = json.loads(raw)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise InvalidInput("subtasks-file", f"cannot read {subtasks_file}: {reason}") from None
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise InvalidInput("subtasks-file", "must hold a JSON list of subtask objects")
    return [subtask_at(index, item) for index, item in enumerate(items)]


def default_title(prompt: str) -> str:
    """The prompt's first non-blank line, trimmed to the title's 200 characters."""
    for line in prompt.splitlines():
        if line.strip():
            return line.strip()[:TITLE_MAX]
    return "untitled"  # a blank prompt: let the session refuse the prompt, not the title


# -- how sessions and events look -----------------------------------------------------------------


def is_settled(session: Session) -> bool:
    """Nothing more will happen on its own: a final state, or a failure with no retry left."""
    return session.is_final or (session.status in RETRYABLE_STATES and not session.can_retry)


def _attempt(session: Session) -> str:
    return f"{session.retry_count + 1}/{session.max_retries + 1}"


def status_line(session: Session) -> str:
    metrics = session.metrics
    line = (
        f"{session.id}  {session.status.value}  attempt {_attempt(session)}  "
        f"agent {session.agent_id or '-'}  tokens {metrics.total_tokens:,}  "
        f"cost ${metrics.cost_usd:.4f}"
    )
    return f"{line}  ({session.status_reason})" if session.status_reason else line


def _list_row(session: Session) -> dict[str, Any]:
    return {
        "id": session.id,
        "title": _clip(session.title, 60),
        "status": session.status.value,
        "priority": session.priority.name,
        "type": session.session_type.value,
        "attempt": _attempt(session),
        "agent": session.agent_id,
        "tokens": f"{session.metrics.total_tokens:,}",
        "cost": f"${session.metrics.cost_usd:.4f}",
    }


def _shown(session: Session, waiting: str | None = None) -> dict[str, Any]:
    """Every field for people: state first, metrics flattened, long texts summarised."""
    record = session.model_dump(mode="json")
    metrics = record.pop("metrics")
    checkpoints = record.pop("checkpoints")
    error = record.pop("error")
    record["metadata"].pop(ATTEMPTS_KEY, None)  # shown one line each, below
    shown: dict[str, Any] = {
        "id": session.id,
        "title": session.title,
        "status": session.status.value,
        "status_reason": session.status_reason or None,
        **({"waiting": waiting} if waiting else {}),
        "attempt": _attempt(session),
        "priority": f"{session.priority.name} ({int(session.priority)})",
    }
    shown.update((key, value) for key, value in record.items() if key not in shown)
    shown["initial_prompt"] = _clip(session.initial_prompt, SHOWN_TEXT_CHARS)
    shown.update({f"metrics.{key}": value for key, value in metrics.items()})
    shown["metrics.total_tokens"] = session.metrics.total_tokens
    shown["checkpoints"] = (
        f"{len(checkpoints)} (latest #{checkpoints[-1]['sequence']})" if checkpoints else 0
    )
    shown["result"] = _summary(session.result)
    if error is not None:  # the current attempt's; the retried ones' are in their lines
        shown["error"] = _summary(error)
    for ended in session.attempts:
        shown[f"attempt {ended['attempt']}"] = (
            f"{ended['status']} at {ended['ended_at']} ({ended['reason']}); "
            f"error: {_summary(ended['error'])}"
        )
    return shown


def _print_session(session: Session, as_json: bool, waiting: str | None = None) -> None:
    if as_json:
        record = session.model_dump(mode="json")
        if waiting:
            record["waiting"] = waiting
        print_record(record, as_json=True)
    else:
        print_record(_shown(session, waiting), as_json=False)


def _summary(value: dict[str, Any] | None) -> str | None:
    return None if value is None else _clip(json.dumps(value, default=str), SHOWN_TEXT_CHARS)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[: limit - 1]}… ({len(text):,} chars)"


def _change(event: SessionEvent) -> str:
    if event.old_status:
        return f"{event.old_status} -> {event.new_status}"
    return event.new_status or ""


def _event_row(event: SessionEvent) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "at": event.at.isoformat(timespec="seconds"),
        "event": event.event_type,
        "change": _change(event),
        "reason": event.reason or None,
        "data": event.data or None,
    }


def _event_line(event: SessionEvent) -> str:
    parts = [f"#{event.seq}", event.at.isoformat(timespec="seconds"), event.event_type]
    parts += [part for part in (_change(event), event.reason and f"({event.reason})") if part]
    if event.data:
        parts.append(json.dumps(event.data, default=str))
    return " ".join(parts)


# -- submit and wait ------------------------------------------------------------------------------


@session_app.command("submit")
def submit(
    tenant: str = TENANT_OPTION,
    prompt: str = typer.Option(None, help="What the agent should do (1-10,000 characters)."),
    prompt_file: str = typer.Option(
        None, "--prompt-file", help="Read the prompt from this file ('-': standard input)."
    ),
    title: str = typer.Option(None, help="Title (default: the prompt's first line)."),
    description: str = typer.Option("", help="Longer description (up to 1,000 characters)."),
    session_type: str = typer.Option(
        "execution", "--type", help="planning, execution, review, debug or integration."
    ),
    priority: str = typer.Option(
        "MEDIUM", help="CRITICAL, HIGH, MEDIUM, LOW or DEFERRED (or 0-4)."
    ),
    model: str = typer.Option(None, help="Model as provider/model (default: the agent's)."),
    max_duration: int = typer.Option(3600, help="Seconds an attempt may run (60-86,400)."),
    max_retries: int = typer.Option(3, help="Retries after FAILED/TIMEOUT (0-20)."),
    capabilities: list[str] = typer.Option(
        None, "--capability", help="A capability the agent must have (repeatable)."
    ),
    max_cost_usd: float = typer.Option(None, help="Stop the session at this cost (USD)."),
    max_tokens: int = typer.Option(None, help="Stop the session at this many tokens."),
    idempotency_key: str = typer.Option(
        None,
        help="The same request with the same key again returns the same session; another "
        "request with a used key is refused.",
    ),
    tags: list[str] = typer.Option(None, "--tag", help="A tag (repeatable)."),
    repository: str = typer.Option(
        None, "--repository", help="The tenant's repository to work on (indorch repo add)."
    ),
    ref: str = typer.Option(None, "--ref", help="With --repository: start here (its default)."),
    subtasks: list[str] = typer.Option(
        None,
        "--subtask",
        help='A subtask "title::prompt", run after the one before (repeatable).',
    ),
    subtasks_file: str = typer.Option(
        None,
        "--subtasks-file",
        help="JSON list of subtasks: title, prompt, key, depends_on (keys or 0-based indices), "
        "dependency_type, max_retries, ... ('-': standard input).",
    ),
    decompose: bool = typer.Option(
        False, "--decompose", help="Split the prompt into subtasks by its numbered/bullet steps."
    ),
    as_json: bool = JSON_OPTION,
    wait: bool = typer.Option(False, "--wait", help="Wait until the session ends."),
    timeout: float = typer.Option(
        None, help="With --wait: give up after this many seconds (exit 3)."
    ),
) -> None:
    """Submit a session; it starts when the dispatcher has a free slot and a fitting agent.

    With subtasks (--subtask, --subtasks-file, --decompose) each subtask becomes a child session
    that starts once those it depends on completed; the session shown is their parent.
    """
    from domain.quota import CostCap
    from services.session_service import SubmitSession

    text = _read_prompt(prompt, prompt_file)
    cap = None
    if max_cost_usd is not None or max_tokens is not None:
        cap = CostCap(max_cost_usd=max_cost_usd, max_tokens=max_tokens)
    if timeout is not None and timeout <= 0:
        raise InvalidInput("timeout", "must be more than 0 seconds")
    request = SubmitSession(
        title=default_title(text) if title is None else title,
        prompt=text,
        description=description,
        session_type=_session_type(session_type),
        priority=_priority(priority),
        model=model,
        max_duration_seconds=max_duration,
        max_retries=max_retries,
        tags=tags or [],
        idempotency_key=idempotency_key,
        required_capabilities=capabilities or [],
        cost_cap=cap,
        repository=repository,
        ref=ref,
        subtasks=_subtasks(subtasks or [], subtasks_file),
        decompose=decompose,
    )
    with tenant_database(tenant) as database:
        service = _service(database)
        session = service.submit(Caller.operator(), tenant, request)
        _warn_if_unserved(database, tenant, session.id)
        if not (as_json and wait):  # with --json --wait: only the session as it ended
            _print_session(session, as_json)
        if not wait:
            return
        session, timed_out = _wait(service, tenant, session, timeout, quiet=as_json)
    if as_json:
        _print_session(session, as_json=True)
    if timed_out:
        print_error(
            f"timed out after {timeout:g}s waiting for session {session.id}: it is "
            f"{session.status.value} and goes on without us "
            f"(indorch session show -t {tenant} {session.id})"
        )
        raise typer.Exit(EXIT_WAIT_TIMED_OUT)
    if session.status not in SUCCESS:
        raise typer.Exit(EXIT_ENDED_OTHERWISE)


def _warn_if_unserved(database: Database, tenant: str, session_id: str) -> None:
    """Stored all the same: an agent may be registered in time. Said now, not in ten minutes."""
    from services.unroutable import UnroutableSessions

    for run_id, reason in UnroutableSessions(database).unserved(tenant, session_id).items():
        print_warning(
            f"session {run_id}: {reason} in tenant {tenant}: it waits PENDING for one "
            "(indorch agent register ... --capability) and fails if none comes in time"
        )


def _wait(
    service: SessionService, tenant: str, session: Session, timeout: float | None, quiet: bool
) -> tuple[Session, bool]:
    """Poll until the session settles or `timeout` passes: a live line on a terminal, a plain
    line per change otherwise, nothing when `quiet`. Returns the last session seen, timed out."""
    started = time.monotonic()
    live = console.is_terminal and not quiet
    shown, timed_out = None, False
    with console.status("") if live else nullcontext() as spinner:
        while True:
            line = status_line(session)
            if spinner is not None:
                spinner.update(f"{line}  [{time.monotonic() - started:.0f}s]")
            elif not quiet and line != shown:
                typer.echo(line)
            shown = line
            elapsed = time.monotonic() - started
            timed_out = timeout is not None and elapsed >= timeout
            if is_settled(session) or timed_out:
                break
            pause = POLL_SECONDS if timeout is None else min(POLL_SECONDS, timeout - elapsed)
            time.sleep(max(pause, 0.0))
            session = service.get(Caller.operator(), tenant, session.id)
    if live:  # the live line vanishes with the spinner: leave the last state on screen
        console.print(status_line(session), markup=False, highlight=False)
    return session, timed_out and not is_settled(session)


# -- read -----------------------------------------------------------------------------------------


@session_app.command("list")
def list_sessions(
    tenant: str = TENANT_OPTION,
    statuses: list[str] = typer.Option(
        None, "--status", help="Only sessions in this state (repeatable)."
    ),
    limit: int = typer.Option(50, help=f"At most this many, newest first (1-{MAX_LIST_LIMIT})."),
    as_json: bool = JSON_OPTION,
) -> None:
    """List a tenant's sessions, newest first."""
    wanted = {_status(value) for value in statuses or []}
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise InvalidInput("limit", f"must be 1-{MAX_LIST_LIMIT}, got {limit}")
    with tenant_database(tenant) as database:
        sessions = _service(database).list(
            Caller.operator(), tenant, statuses=wanted or None, limit=limit
        )
    if as_json:
        print_rows([s.model_dump(mode="json") for s in sessions], COLUMNS, as_json=True)
    else:
        print_rows([_list_row(s) for s in sessions], COLUMNS, as_json=False)


@session_app.command("show")
def show(
    session_id: str = SESSION_ARGUMENT,
    tenant: str = TENANT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Show one session: every field, its metrics, and a summary of its result."""
    with tenant_database(tenant) as database:
        session = _service(database).get(Caller.operator(), tenant, session_id)
        waiting = _runtime_wait(database, session)
    _print_session(session, as_json, waiting)


def _runtime_wait(database: Database, session: Session) -> str | None:
    """A queued session of a tenant whose managed runtime waits for a slot says so."""
    if session.status not in (SessionStatus.PENDING, SessionStatus.QUEUED):
        return None
    from services.runtime_manager import runtime_wait

    return runtime_wait(database, Caller.operator(), session.tenant_id)


@session_app.command("events")
def events(
    session_id: str = SESSION_ARGUMENT,
    tenant: str = TENANT_OPTION,
    after: int = typer.Option(0, help="Only events after this sequence number."),
    follow: bool = typer.Option(
        False, "--follow", "-f", help="Keep printing new events until the session ends."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print JSON (with --follow: one event per line)."
    ),
) -> None:
    """A session's durable history: status changes, agent messages, tool calls, costs."""
    with tenant_database(tenant) as database:
        service = _service(database)
        if not follow:
            history = _all_events(service, tenant, session_id, after)
            if as_json:
                rows = [event.model_dump(mode="json") for event in history]
                print_rows(rows, EVENT_COLUMNS, as_json=True)
            else:
                print_rows([_event_row(e) for e in history], EVENT_COLUMNS, as_json=False)
            return
        _follow(service, tenant, session_id, after, as_json)


def _all_events(
    service: SessionService, tenant: str, session_id: str, after: int
) -> list[SessionEvent]:
    history: list[SessionEvent] = []
    while batch := service.events(
        Caller.operator(), tenant, session_id, after_seq=after
    ):  # pages of the repo
        history += batch
        after = batch[-1].seq
    return history


def _follow(
    service: SessionService, tenant: str, session_id: str, after: int, as_json: bool
) -> None:
    def emit(batch: list[SessionEvent]) -> int:
        for event in batch:
            typer.echo(event.model_dump_json() if as_json else _event_line(event))
        return batch[-1].seq if batch else after

    while True:
        after = emit(_all_events(service, tenant, session_id, after))
        if is_settled(service.get(Caller.operator(), tenant, session_id)):
            emit(_all_events(service, tenant, session_id, after))  # the last ones, if any
            return
        time.sleep(POLL_SECONDS)


# -- steer ----------------------------------------------------------------------------------------


def _steer(action: str, tenant: str, session_id: str, reason: str | None) -> None:
    with tenant_database(tenant) as database:
        service = _service(database, steering=True)
        steer = getattr(service, action)
        operator = Caller.operator()
        session = (
            steer(operator, tenant, session_id, reason)
            if reason
            else steer(operator, tenant, session_id)
        )
    typer.echo(f"session {session.id} is {session.status.value} ({session.status_reason})")


@session_app.command("cancel")
def cancel(
    session_id: str = SESSION_ARGUMENT,
    tenant: str = TENANT_OPTION,
    reason: str = REASON_OPTION,
) -> None:
    """Cancel: before it starts, CANCELLED; running or paused, aborted on the agent."""
    _steer("cancel", tenant, session_id, reason)


@session_app.command("pause")
def pause(
    session_id: str = SESSION_ARGUMENT,
    tenant: str = TENANT_OPTION,
    reason: str = REASON_OPTION,
) -> None:
    """Pause a running session: the agent's current turn is aborted; `resume` continues it."""
    _steer("pause", tenant, session_id, reason)


@session_app.command("resume")
def resume(
    session_id: str = SESSION_ARGUMENT,
    tenant: str = TENANT_OPTION,
    reason: str = REASON_OPTION,
) -> None:
    """Resume a paused session (a supervisor picks it up and tells the agent to continue)."""
    _steer("resume", tenant, session_id, reason)


@session_app.command("stop")
def stop(
    session_id: str = SESSION_ARGUMENT,
    tenant: str = TENANT_OPTION,
    reason: str = REASON_OPTION,
) -> None:
    """Stop a running, degraded or paused session for good (aborted on the agent)."""
    _steer("stop", tenant, session_id, reason)


@session_app.command("retry")
def retry(
    session_id: str = SESSION_ARGUMENT,
    tenant: str = TENANT_OPTION,
    reason: str = REASON_OPTION,
) -> None:
    """Retry a FAILED, TIMEOUT or ORPHANED session now (counts one of its retries)."""
    _steer("retry", tenant, session_id, reason)


@session_app.command("message")
def message(
    session_id: str = SESSION_ARGUMENT,
    text: str = typer.Argument(..., help="The follow-up message (1-10,000 characters)."),
    tenant: str = TENANT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Send a follow-up message: queued while the session works and delivered to its agent
    when the current turn ends; to a session that has ended, a new child session continuing it."""
    with tenant_database(tenant) as database:
        follow_up = _service(database).message(Caller.operator(), tenant, session_id, text)
    if as_json:
        print_record(follow_up.model_dump(mode="json"), as_json=True)
    elif follow_up.delivery == "queued":
        typer.echo(
            f"message {follow_up.message_id} queued for session {session_id}: "
            "delivered when its agent's current turn ends"
        )
    else:
        typer.echo(
            f"session {session_id} has ended: message {follow_up.message_id} continues it as "
            f"session {follow_up.session_id}"
        )
