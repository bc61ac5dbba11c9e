"""The OpenCode permission rules every session is created with, and who may widen them.

A session works in its own worktree and nowhere else: `external_directory` (any path outside the
session's directory, for every tool that names one) is denied, whatever the agent profile on the
server says (the session's rules are evaluated after the agent's; the last matching rule wins).
What OpenCode asks about inside the worktree is answered by a policy: a submitter may only have
it waited on (until the deadline) or rejected; allowing is for an operator's agent profile.
That is a rule of the agent server; the wall between tenants is the runtime's sandbox.
"""

from __future__ import annotations

from typing import Final

WAIT, REJECT, ALLOW = "wait", "reject", "allow"
SUBMITTER_POLICIES: Final = frozenset({WAIT, REJECT})
OPERATOR_POLICIES: Final = frozenset({WAIT, REJECT, ALLOW})
CONFINED_RULES: Final[tuple[dict[str, str], ...]] = (
    {"permission": "external_directory", "pattern": "*", "action": "deny"},
)


def session_rules() -> list[dict[str, str]]:
    """The `permission` ruleset of `POST /session` for every session we create."""
    return [dict(rule) for rule in CONFINED_RULES]


def permission_policy(submitted: object, profile: str | None) -> str:
    """How to answer a permission request: the agent profile's `allow` (the operator's) wins;
    otherwise the submitter's `wait` or `reject` (anything else: wait)."""
    if profile == ALLOW:
        return ALLOW
    return submitted if submitted in SUBMITTER_POLICIES else WAIT  # type: ignore[return-value]
