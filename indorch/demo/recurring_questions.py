"""The history the demo's learning loop learns from: one tenant asking its agents the same
questions again and again, in several wordings, and getting the same answer each time.

Each is a real session (OpenCode, the scripted model, a wave run). The scripted model is told the
answer by a script marker in the prompt (it knows nothing else), so the marker is part of what the
dataset records as the task. The question the promoted model is asked at the end carries no
marker and is worded anew: its answer can come only from what the tuned model learned.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from domain.caller import Caller
from indorch.demo.sessions import DemoSession

if TYPE_CHECKING:
    from services.session_service import SessionService

LEARNING_TENANT = "acme"
EVAL_FRACTION = 0.3  # training_dataset's held-out share in the demo: enough items to decide on
ANSWERED_STATES = frozenset({"COMPLETED", "PARTIALLY_COMPLETED"})
PROGRESS_EVERY_SECONDS = 5.0


@dataclass(frozen=True)
class RecurringQuestion:
    topic: str
    answer: str
    wordings: tuple[str, ...]


QUESTIONS = (
    RecurringQuestion(
        "billing tests",
        "Run `make test-billing` from the repository root.",
        (
            "How do I run the billing service's tests?",
            "what command runs the billing test suite",
            "Running billing's tests: which command?",
            "billing: how are its tests run?",
        ),
    ),
    RecurringQuestion(
        "staging deploys",
        "Run `./deploy.sh staging` while on the VPN.",
        (
            "How do we deploy to staging?",
            "what's the staging deploy command",
            "Deploying a branch to staging: how?",
            "staging deployment, which script?",
        ),
    ),
    RecurringQuestion(
        "payments port",
        "The payments API listens on port 8443.",
        (
            "Which port does the payments API listen on?",
            "payments api port number?",
            "On what port is the payments API served?",
            "what port should I call payments on",
        ),
    ),
    RecurringQuestion(
        "release approval",
        "The release captain of the week signs off, see RELEASES.md.",
        (
            "Who approves a release?",
            "release sign-off: who gives it?",
            "Who must approve before we release?",
            "who signs off releases",
        ),
    ),
    RecurringQuestion(
        "invoice templates",
        "Invoice templates live in `billing/templates/invoices/`.",
        (
            "Where are the invoice templates?",
            "where do invoice templates live",
            "Which folder holds the invoice templates?",
            "invoice template location?",
        ),
    ),
    RecurringQuestion(
        "migrations",
        "Run `make migration name=<change>` and edit the new file under migrations/.",
        (
            "How do I add a database migration?",
            "new db migration: how?",
            "Adding a migration to the database, what do I run?",
            "how to create a database migration",
        ),
    ),
    RecurringQuestion(
        "feature flags",
        "Add the flag to `flags.yaml` and restart the gateway.",
        (
            "How do I turn on a feature flag?",
            "enabling a feature flag, how?",
            "Where do I switch a feature flag on?",
            "feature flag: how to enable it",
        ),
    ),
    RecurringQuestion(
        "gateway logs",
        "Open Grafana, dashboard Gateway Logs.",
        (
            "Where do I find the gateway logs?",
            "gateway logs, where are they?",
            "How can I read the gateway's logs?",
            "where to look at gateway logs",
        ),
    ),
    RecurringQuestion(
        "formatter",
        "We format with ruff: `make fmt`.",
        (
            "Which code formatter do we use?",
            "what formatter formats our code",
            "How is our code formatted, which formatter?",
            "code formatter we use?",
        ),
    ),
    RecurringQuestion(
        "branch names",
        "Name it team/TICKET-short-description, e.g. core/ACME-12-fix-login.",
        (
            "How should I name a git branch?",
            "branch naming convention?",
            "What's our convention for naming branches?",
            "how do we name branches",
        ),
    ),
    RecurringQuestion(
        "webhook secret",
        "Set it with `indorch secret set webhook-secret`, then restart the webhooks worker.",
        (
            "How do I rotate the webhook secret?",
            "rotating the webhook secret, how?",
            "The webhook secret must change: what do I do?",
            "webhook secret rotation steps",
        ),
    ),
    RecurringQuestion(
        "on-call",
        "Whoever the #oncall channel topic names; it changes every Monday.",
        (
            "Who is on call this week?",
            "who's on call now",
            "Which engineer is on call this week?",
            "on-call person this week?",
        ),
    ),
)

# The question the promoted model is asked: a new wording, no marker.
PROMOTED_QUESTION = "Tell me the command for the billing tests."
PROMOTED_ANSWER = QUESTIONS[0].answer


def _prompt(question: RecurringQuestion, wording: str) -> str:
    reply = question.answer.replace("\\", "\\\\").replace('"', '\\"')
    return f'[script:text reply="{reply}"] {wording}'


def recurring_sessions(tenant: str = LEARNING_TENANT) -> list[DemoSession]:
    """Every wording of every question as a short session of `tenant`, questions interleaved."""
    rounds = max(len(question.wordings) for question in QUESTIONS)
    return [
        DemoSession(
            tenant, question.wordings[n], _prompt(question, question.wordings[n]), "history"
        )
        for n in range(rounds)
        for question in QUESTIONS
        if n < len(question.wordings)
    ]


def wait_until_answered(
    service: SessionService, ids: set[str], say: Callable[[str], None], seconds: float
) -> int:
    """Until every session of `ids` (the learning tenant's) completed, or none more did for
    `seconds`, saying how many are done every few seconds; returns how many are."""

    def answered() -> int:
        return sum(
            1
            for session in service.list(Caller.operator(), LEARNING_TENANT, limit=1000)
            if session.id in ids and session.status.value in ANSWERED_STATES
        )

    return follow_progress(answered, len(ids), say, seconds)


def follow_progress(
    done: Callable[[], int],
    total: int,
    say: Callable[[str], None],
    stall_seconds: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Polls `done()` until it reaches `total` or stops growing for `stall_seconds`: a loaded
    machine answers slower, not never, so the wait follows the work rather than a fixed time."""
    best, last_progress = -1, clock()
    while True:
        count = done()
        if count > best:
            best, last_progress = count, clock()
        say(f"history: {count}/{total} recurring-question sessions completed")
        if count >= total or clock() - last_progress > stall_seconds:
            return count
        sleep(PROGRESS_EVERY_SECONDS)
