"""How the demo shows its sessions: a live table while they run, a summary when they are done.

On a terminal the table is redrawn every second (`rich.live`); otherwise (CI logs, tests) each
state change is printed as one line, with a count of states every few seconds.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from domain.session import RETRYABLE_STATES, Session
from indorch.demo.repositories import patch_stat
from indorch.demo.sessions import Submitted

REFRESH_SECONDS = 1.0
LINE_MODE_COUNTS_EVERY_SECONDS = 10.0
STATE_STYLE = {
    "PENDING": "dim",
    "QUEUED": "cyan",
    "RUNNING": "bold blue",
    "PAUSED": "yellow",
    "DEGRADED": "yellow",
    "COMPLETED": "bold green",
    "PARTIALLY_COMPLETED": "green",
    "FAILED": "bold red",
    "TIMEOUT": "red",
    "ORPHANED": "red",
    "STOPPED": "magenta",
    "CANCELLED": "magenta",
}
STATE_ORDER = list(STATE_STYLE)


def is_settled(session: Session) -> bool:
    """Nothing more happens to it on its own: a final state, or a failure with no retry left."""
    return session.is_final or (session.status in RETRYABLE_STATES and not session.can_retry)


@dataclass(frozen=True)
class Row:
    """One session as the demo shows it."""

    tenant: str
    session_id: str
    title: str
    scenario: str
    state: str
    reason: str
    attempts: int
    agent: str
    tokens: int
    cost_usd: float
    files_changed: int | None
    duration_seconds: float | None
    child: bool  # a subtask of a decomposed request
    coordinator: bool  # a decomposed request: its tokens and cost are its children's, summed
    settled: bool
    repository: str | None = None  # the tenant's repository it works on
    branch: str | None = None  # the branch it pushed there (once COMPLETED)
    patch_stat: str | None = None  # its patch, counted: `1 file, +3 -0`

    def as_json(self) -> dict[str, object]:
        return {
            "tenant": self.tenant,
            "id": self.session_id,
            "title": self.title,
            "scenario": self.scenario,
            "state": self.state,
            "reason": self.reason,
            "attempts": self.attempts,
            "agent": self.agent,
            "tokens": self.tokens,
            "cost_usd": round(self.cost_usd, 6),
            "files_changed": self.files_changed,
            "duration_seconds": self.duration_seconds,
            "subtask": self.child,
            "repository": self.repository,
            "branch": self.branch,
            "patch_stat": self.patch_stat,
        }


def rows_for(
    sessions: list[Session], submitted: list[Submitted], agent_names: dict[str, str]
) -> list[Row]:
    """Submitted sessions in submission order, each followed by its children (subtasks)."""
    scenario = {item.session_id: item.spec.scenario for item in submitted}
    by_id = {session.id: session for session in sessions}
    children: dict[str, list[Session]] = {}
    for session in sorted(sessions, key=lambda s: s.id):
        if session.parent_id:
            children.setdefault(session.parent_id, []).append(session)
    rows: list[Row] = []
    for item in submitted:
        parent = by_id.get(item.session_id)
        if parent is None:
            continue
        rows.append(_row(parent, scenario[parent.id], agent_names, child=False))
        for child in children.get(parent.id, []):
            key = child.metadata.get("subtask", "?")
            rows.append(_row(child, f"subtask {key!r}", agent_names, child=True))
    return rows


def _row(session: Session, scenario: str, agent_names: dict[str, str], child: bool) -> Row:
    result = session.result or {}
    files = result.get("files_changed")
    patch = result.get("patch")
    return Row(
        tenant=session.tenant_id,
        session_id=session.id,
        title=session.title,
        scenario=scenario,
        state=session.status.value,
        reason=session.status_reason,
        attempts=session.retry_count + 1,
        agent=agent_names.get(session.agent_id or "", "-"),
        tokens=session.metrics.total_tokens,
        cost_usd=session.metrics.cost_usd,
        files_changed=int(files) if files is not None else None,
        duration_seconds=session.metrics.duration_seconds,
        child=child,
        coordinator="decomposition" in session.metadata,
        settled=is_settled(session),
        repository=session.repository,
        branch=result.get("branch"),
        patch_stat=patch_stat(patch) if isinstance(patch, str) else None,
    )


def state_counts(rows: list[Row]) -> str:
    counts = Counter(row.state for row in rows)
    return "  ".join(f"{state} {counts[state]}" for state in STATE_ORDER if counts[state])


def _elapsed(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}:{rest:02d}"


def _state(row: Row) -> Text:
    return Text(row.state, style=STATE_STYLE.get(row.state, ""))


def _title(row: Row) -> str:
    return f"  └ {row.title}" if row.child else row.title


def _files(row: Row) -> str:
    return "-" if row.files_changed is None else str(row.files_changed)


def _live_table(rows: list[Row]) -> Table:
    table = Table(expand=False, pad_edge=False)
    table.add_column("tenant", no_wrap=True)
    table.add_column("id", no_wrap=True, overflow="ellipsis")
    table.add_column("title", no_wrap=True, overflow="ellipsis", max_width=34)
    table.add_column("scenario", no_wrap=True, overflow="ellipsis", max_width=38, style="dim")
    table.add_column("state", no_wrap=True)
    table.add_column("att.", justify="right")
    table.add_column("agent", no_wrap=True)
    table.add_column("tokens", justify="right")
    table.add_column("cost", justify="right")
    table.add_column("files", justify="right")
    for row in rows:
        table.add_row(
            row.tenant,
            f"…{row.session_id[-8:]}",  # the summary shows the whole id
            _title(row),
            row.scenario,
            _state(row),
            str(row.attempts),
            row.agent,
            f"{row.tokens:,}",
            f"${row.cost_usd:.4f}",
            _files(row),
        )
    return table


def live_view(rows: list[Row], elapsed: float, note: str, hint: str = "") -> Group:
    settled = sum(row.settled for row in rows)
    header = Text.assemble(
        ("Industrial Orchestrator demo", "bold"),
        f"  {_elapsed(elapsed)} elapsed  ·  {settled}/{len(rows)} settled  ·  ",
        state_counts(rows),
    )
    parts: list[object] = [header]
    parts += [Text(line, style="dim") for line in (hint, note) if line]
    parts.append(_live_table(rows))
    return Group(*parts)


def summary_table(rows: list[Row]) -> Table:
    table = Table(title="Summary", title_justify="left", pad_edge=False)
    table.add_column("tenant", no_wrap=True)
    table.add_column("session", no_wrap=True)
    table.add_column("title", no_wrap=True, overflow="ellipsis", max_width=34)
    table.add_column("state", no_wrap=True)
    table.add_column("attempts", justify="right")
    table.add_column("agent", no_wrap=True)
    table.add_column("tokens", justify="right")
    table.add_column("cost", justify="right")
    table.add_column("files changed", justify="right")
    table.add_column("duration", justify="right")
    for row in rows:
        duration = "-" if row.duration_seconds is None else f"{row.duration_seconds:.1f} s"
        table.add_row(
            row.tenant,
            row.session_id,
            _title(row),
            _state(row),
            str(row.attempts),
            row.agent,
            f"{row.tokens:,}",
            f"${row.cost_usd:.4f}",
            _files(row),
            duration,
        )
    leaves = [row for row in rows if not row.coordinator]
    table.add_section()
    table.add_row(
        "total",
        f"{len(rows)} sessions",
        "",
        Text(state_counts(rows)),
        str(sum(row.attempts for row in leaves)),
        "",
        f"{sum(row.tokens for row in leaves):,}",
        f"${sum(row.cost_usd for row in leaves):.4f}",
        str(sum(row.files_changed or 0 for row in leaves)),
        "",
    )
    return table


def branches_table(rows: list[Row], remotes: dict[str, str]) -> Table:
    """The sessions on a repository: the branch each pushed and its patch's size. `remotes`:
    each repository's URL by (tenant, name) joined as `tenant/name`."""
    table = Table(title="Branches pushed", title_justify="left", pad_edge=False)
    table.add_column("tenant", no_wrap=True)
    table.add_column("title", no_wrap=True, overflow="ellipsis", max_width=34)
    table.add_column("repository", no_wrap=True)
    table.add_column("branch", no_wrap=True)
    table.add_column("patch", no_wrap=True)
    for row in rows:
        if row.repository is None:
            continue
        table.add_row(
            row.tenant,
            row.title,
            remotes.get(f"{row.tenant}/{row.repository}", row.repository),
            row.branch or Text("not pushed", style="red"),
            row.patch_stat or "-",
        )
    return table


class Progress:
    """Shows `snapshot()` until every row is settled, or the deadline; returns the last rows.
    `hint` is shown above the live table; `note(rows)` too, and in line mode when it changes."""

    def __init__(self, console: Console, snapshot: Callable[[], list[Row]], hint: str = "") -> None:
        self._console = console
        self._snapshot = snapshot
        self._hint = hint

    def follow(
        self, started: float, deadline: float, note: Callable[[list[Row]], str]
    ) -> list[Row]:
        if self._console.is_terminal:
            return self._follow_live(started, deadline, note)
        return self._follow_lines(started, deadline, note)

    def _follow_live(
        self, started: float, deadline: float, note: Callable[[list[Row]], str]
    ) -> list[Row]:
        def view(rows: list[Row]) -> Group:
            return live_view(rows, time.monotonic() - started, note(rows), self._hint)

        with Live(view(self._snapshot()), console=self._console, auto_refresh=False) as live:
            while True:
                rows = self._snapshot()
                live.update(view(rows), refresh=True)
                if _all_settled(rows) or time.monotonic() > deadline:
                    return rows
                time.sleep(REFRESH_SECONDS)

    def _follow_lines(
        self, started: float, deadline: float, note: Callable[[list[Row]], str]
    ) -> list[Row]:
        seen: dict[str, tuple[str, int]] = {}
        last_counts = 0.0
        last_note = ""
        if self._hint:
            self._console.print(self._hint, highlight=False, soft_wrap=True)
        while True:
            rows = self._snapshot()
            elapsed = time.monotonic() - started
            for row in rows:
                if seen.get(row.session_id) != (row.state, row.attempts):
                    seen[row.session_id] = (row.state, row.attempts)
                    self._console.print(_line(row, elapsed), highlight=False, soft_wrap=True)
            current_note = note(rows)
            if current_note and current_note != last_note:
                self._console.print(f"[{_elapsed(elapsed)}] {current_note}", highlight=False)
            last_note = current_note
            if elapsed - last_counts >= LINE_MODE_COUNTS_EVERY_SECONDS:
                last_counts = elapsed
                self._console.print(f"[{_elapsed(elapsed)}] {state_counts(rows)}", highlight=False)
            if _all_settled(rows) or time.monotonic() > deadline:
                return rows
            time.sleep(REFRESH_SECONDS)


def _all_settled(rows: list[Row]) -> bool:
    return bool(rows) and all(row.settled for row in rows)


def _line(row: Row, elapsed: float) -> str:
    where = f" on {row.agent}" if row.agent != "-" else ""
    why = f" ({row.reason})" if row.reason else ""
    return (
        f"[{_elapsed(elapsed)}] {row.tenant:<7} {row.session_id} {row.state:<9} "
        f"attempt {row.attempts}{where}: {row.title}{why}"
    )
