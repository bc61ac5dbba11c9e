"""Secret patterns a coding session may print (keys, tokens, passwords, private keys, connection
strings), found and replaced before any text leaves for a training file.

Patterns, not entropy guesses: each names a kind, so a dataset's check can say which kind was
left, and a false positive is a readable rule to refine rather than a threshold to tune.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class SecretPattern:
    kind: str
    regex: re.Pattern[str]
    keep_group: int | None = None  # a group kept around the secret (e.g. "password = ")


def _p(kind: str, pattern: str, keep_group: int | None = None, flags: int = 0) -> SecretPattern:
    return SecretPattern(kind, re.compile(pattern, flags), keep_group)


PATTERNS: tuple[SecretPattern, ...] = (
    _p(
        "private_key",
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)",
        flags=re.DOTALL,
    ),
    _p("aws_access_key", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    _p("github_token", r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,})"),
    _p("openai_key", r"\bsk-(?:proj-|live-|test-)?[A-Za-z0-9_-]{20,}"),
    _p("slack_token", r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    _p("jwt", r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    _p("bearer_token", r"(\bBearer\s+)(?!\[REDACTED)[A-Za-z0-9._~+/-]{16,}=*", keep_group=1),
    # scheme://user:password@host — the password only; the URL keeps its shape
    _p(
        "connection_string",
        r"(\b[a-z][a-z0-9+.-]*://[^\s:/@]*:)(?!\[REDACTED)[^\s@/]+(?=@)",
        keep_group=1,
    ),
    # password = "...", API_TOKEN=..., secret: ... (a name that says so, then a value)
    _p(
        "assigned_secret",
        r"((?:passw(?:or)?d|passwd|pwd|secret|token|api[_-]?key|access[_-]?key)[A-Za-z0-9_]*"
        r"[\"']?\s*[:=]\s*)(?![\"']?\[REDACTED)[\"']?[^\s\"',;]{6,}[\"']?",
        keep_group=1,
        flags=re.IGNORECASE,
    ),
)


@dataclass(frozen=True)
class FoundSecret:
    kind: str
    start: int
    end: int


def find_secrets(text: str) -> list[FoundSecret]:
    found = []
    for pattern in PATTERNS:
        for match in pattern.regex.finditer(text):
            start = match.end(pattern.keep_group) if pattern.keep_group else match.start()
            found.append(FoundSecret(pattern.kind, start, match.end()))
    return sorted(found, key=lambda item: item.start)


def scrub(text: str) -> str:
    """The text with every secret replaced by ``[REDACTED:<kind>]``."""
    for pattern in PATTERNS:
        replacement = f"[REDACTED:{pattern.kind}]"
        if pattern.keep_group:
            group = pattern.keep_group
            text = pattern.regex.sub(lambda m, g=group, r=replacement: m.group(g) + r, text)
        else:
            text = pattern.regex.sub(replacement, text)
    return text
