"""What the demo runs: two tenants, their agents, and about a dozen sessions through the service.

Each session's prompt carries a script marker (`standins/model_script.py`) that makes the scripted
model behave in one telling way: write a file, answer, answer slowly, refuse once, hang past the
deadline, fail with a 503 that OpenCode retries itself. One request is decomposed into three
subtasks (a small DAG: the model first, then the store and the command line side by side).
The sessions that write a file work on their tenant's repository (`indorch.demo.repositories`):
each in its own worktree on `indorch/<session id>`, pushed when it completes. Everything is
submitted through `SessionService`, as `indorch session submit` does; the Dagster daemon's
sensors take it from there, on each tenant's own managed runtime.
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.caller import Caller
from domain.decomposition import SubtaskSpec
from domain.tenant import Tenant
from resources.database import Database
from services.factory import ServiceFactory
from services.session_service import SessionService, SubmitSession

TIMEOUT_SECONDS = 60  # the smallest max duration a session may have
SLOW_SECONDS = 5
MONTHLY_TOKEN_BUDGET = 5_000_000


@dataclass(frozen=True)
class DemoTenant:
    slug: str
    name: str
    max_concurrent_sessions: int


TENANTS = (DemoTenant("acme", "Acme Corp", 4), DemoTenant("globex", "Globex", 2))


@dataclass(frozen=True)
class DemoSubtask:
    key: str
    title: str
    prompt: str
    depends_on: tuple[str, ...] = ()


@dataclass(frozen=True)
class DemoSession:
    tenant: str
    title: str
    prompt: str
    scenario: str  # what to watch for, shown next to the session
    max_duration_seconds: int = 3600
    subtasks: tuple[DemoSubtask, ...] = ()
    long: bool = False  # left out by --quick (the slow answer and the 60 s timeout)
    repository: str | None = None  # the tenant's repository it works on (None: scratch)

    def request(self) -> SubmitSession:
        return SubmitSession(
            title=self.title,
            prompt=self.prompt,
            max_duration_seconds=self.max_duration_seconds,
            tags=["demo"],
            repository=self.repository,
            subtasks=[
                SubtaskSpec(
                    key=subtask.key,
                    title=subtask.title,
                    prompt=subtask.prompt,
                    depends_on=list(subtask.depends_on),
                )
                for subtask in self.subtasks
            ],
        )


def _write(path: str, content: str, reply: str) -> str:
    escaped = content.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return f'[script:write path={path} content="{escaped}" reply="{reply}"]'


# Submission order is claim order (same priority): the 60 s timeout first, so its clock starts at
# once, then the decomposed request (its subtasks run in two rounds) and the refusal (its retry).
SESSIONS = (
    DemoSession(
        "acme",
        "Think hard about caching",
        "[script:hang attempts=1] Design a caching layer for the API.",
        f"hangs -> TIMEOUT at {TIMEOUT_SECONDS} s -> retried",
        max_duration_seconds=TIMEOUT_SECONDS,
        long=True,
    ),
    DemoSession(
        "acme",
        "Build the todo app",
        "Build a small todo app: a model, a store and a command line.",
        "decomposed: model, then store + cli",
        subtasks=(
            DemoSubtask(
                "model",
                "Todo: the data model",
                _write("todo/model.py", "class Todo:\n    title: str\n", "Model written.")
                + " Write the data model.",
            ),
            DemoSubtask(
                "store",
                "Todo: the store",
                _write("todo/store.py", "TODOS: list = []\n", "Store written.")
                + " Write the in-memory store.",
                depends_on=("model",),
            ),
            DemoSubtask(
                "cli",
                "Todo: the command line",
                _write("todo/cli.py", "import sys\n", "CLI written.") + " Write the command line.",
                depends_on=("model",),
            ),
        ),
    ),
    DemoSession(
        "acme",
        "Refactor the tokenizer",
        "[script:fail-401 attempts=1] Refactor the tokenizer into smaller functions.",
        "model refuses once (401) -> retried",
    ),
    DemoSession(
        "acme",
        "Add a hello-world script",
        _write("src/hello.py", 'print("hello, acme")\n', "Added src/hello.py.")
        + " Add a script that greets the user.",
        "app: writes src/hello.py",
        repository="app",
    ),
    DemoSession(
        "acme",
        "Document the architecture",
        _write("docs/ARCHITECTURE.md", "# Architecture\n\nOne service.\n", "Documented.")
        + " Write a short architecture note.",
        "app: writes docs/ARCHITECTURE.md",
        repository="app",
    ),
    DemoSession(
        "acme",
        "Explain the retry policy",
        '[script:text reply="Retries back off exponentially, with jitter."] '
        "How do our retries work?",
        "text answer",
    ),
    DemoSession(
        "acme",
        "Review the parser slowly",
        f'[script:slow seconds={SLOW_SECONDS} reply="The parser looks fine."] Review the parser.',
        f"slow answer ({SLOW_SECONDS} s)",
        long=True,
    ),
    DemoSession(
        "globex",
        "Write the Q3 report",
        _write("reports/q3.md", "# Q3\n\nRevenue up.\n", "Report written.")
        + " Write the quarterly report.",
        "handbook: writes reports/q3.md",
        repository="handbook",
    ),
    DemoSession(
        "globex",
        "Add the settings file",
        _write("config/settings.toml", 'mode = "demo"\n', "Settings added.")
        + " Add a settings file.",
        "handbook: writes config/settings.toml",
        repository="handbook",
    ),
    DemoSession(
        "globex",
        "Summarize the changelog",
        '[script:text reply="Three fixes and one feature."] Summarize the changelog.',
        "text answer",
    ),
    DemoSession(
        "globex",
        "Answer a support question",
        '[script:text reply="Restart the service, then retry."] A customer cannot log in.',
        "text answer",
    ),
    DemoSession(
        "globex",
        "Survive a flaky model",
        '[script:fail-5xx times=1 status=503 retry_after=0.5 reply="Done despite the 503."] '
        "Run the nightly clean-up.",
        "model 503 once; OpenCode retries it",
    ),
)


def demo_sessions(quick: bool) -> list[DemoSession]:
    """The sessions to submit; `quick` leaves out the slow one and the 60 s timeout."""
    return [session for session in SESSIONS if not (quick and session.long)]


def seed(database: Database) -> None:
    """Create the tenants, as `indorch tenant create` does (their agents are their runtimes)."""
    tenants = ServiceFactory(database).tenants()
    for tenant in TENANTS:
        tenants.create(
            Caller.operator(),
            Tenant(
                slug=tenant.slug,
                name=tenant.name,
                max_concurrent_sessions=tenant.max_concurrent_sessions,
                monthly_token_budget=MONTHLY_TOKEN_BUDGET,
            ),
        )


@dataclass(frozen=True)
class Submitted:
    spec: DemoSession
    session_id: str


def submit_all(service: SessionService, sessions: list[DemoSession]) -> list[Submitted]:
    return [
        Submitted(spec, service.submit(Caller.operator(), spec.tenant, spec.request()).id)
        for spec in sessions
    ]
