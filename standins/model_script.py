"""Script markers: how a prompt tells the scripted model what to do.

A marker is written anywhere in the conversation's FIRST user message::

    [script:NAME key=value key="quoted value" ...]

- ``NAME`` is one of :data:`SCRIPT_NAMES` (lowercase letters, digits and ``-``).
- A bare value runs up to the next whitespace or ``]``; a quoted value may hold spaces and the
  escapes ``\\n``, ``\\t``, ``\\"`` and ``\\\\``.
- No marker means ``[script:text]``. An unknown name or an invalid parameter is an error the model
  server answers with HTTP 400 (a bad test prompt should fail loudly, not fall back silently).

The scripts (parameters are optional unless marked required):

``[script:text reply="..."]``
    Answer one text reply (default: a short fixed sentence).
``[script:write path=notes/hello.md content="# Hello\\n" reply="..."]``
    Turn 1: call OpenCode's ``write`` tool with ``filePath`` = ``path`` made absolute against
    the working directory OpenCode states in its system prompt, and ``content`` (default
    ``"hello\\n"``). Once the tool's result is in the conversation: answer the final text
    ``reply``. ``path`` is required; an absolute ``path`` is used as it is.
``[script:read path=notes/hello.md reply="..."]``
    Turn 1: call OpenCode's ``read`` tool with ``filePath`` = ``path`` (required), made absolute
    like ``write``'s. Once the tool's result is in the conversation: answer the final text
    ``reply``. What the tool read (or its error) is in the session's messages (the tool part's
    ``state.output`` or ``state.error``): how tests read files as the agent.
``[script:bash command="ls -la" reply="..."]``
    Turn 1: call OpenCode's ``bash`` tool with ``command`` (required). Once the tool's result is
    in the conversation: answer the final text ``reply``. The command's output is in the
    session's messages (the tool part's ``state.output``): how tests run commands as the agent.
``[script:fail-401 message="..." attempts=N]``
    HTTP 401 with an OpenAI-style error body, every call (OpenCode does not retry; the session
    gets ``session.error``). With ``attempts=N`` only the first N agent sessions that send this
    prompt fail; later ones (the orchestrator's retries) are answered like ``text``.
``[script:fail-5xx times=2 status=500 retry_after=0.2 reply="..."]``
    HTTP ``status`` (500, 502, 503 or 529) on the first ``times`` calls of this conversation, then
    behave like ``text`` (OpenCode retries with backoff: ``session.status`` type ``retry``).
    ``retry_after`` (seconds) adds ``retry-after-ms``/``retry-after`` headers to the failures,
    which OpenCode honours instead of its own backoff (about 2 s, then 4 s, ...).
``[script:hang attempts=N]``
    Accept the request and never answer, until the client disconnects (or the server stops).
    ``attempts=N`` as for ``fail-401``: later agent sessions get a ``text`` answer.
``[script:slow seconds=3 reply="..."]``
    Like ``text``, but the answer takes ``seconds``: the streamed chunks are spread over that time
    (non-streaming: the whole answer arrives after that time).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

SCRIPT_NAMES = frozenset({"text", "write", "read", "bash", "fail-401", "fail-5xx", "hang", "slow"})
DEFAULT_REPLY = "Done. This is the scripted model's answer."
DEFAULT_WRITE_CONTENT = "hello\n"
RETRYABLE_STATUSES = frozenset({500, 502, 503, 529})
MAX_SLOW_SECONDS = 600.0
MAX_FAILURES = 100

_VALUE = r'"(?:[^"\\]|\\.)*"|[^\s\]"]+'
_MARKER = re.compile(r"\[script:([a-z0-9-]+)((?:\s+[a-z_]+=(?:" + _VALUE + r"))*)\s*\]")
_PARAMETER = re.compile(r"([a-z_]+)=(" + _VALUE + r")")
_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}
_ALLOWED_PARAMETERS = {
    "text": {"reply"},
    "write": {"path", "content", "reply"},
    "read": {"path", "reply"},
    "bash": {"command", "reply"},
    "fail-401": {"message", "attempts", "reply"},
    "fail-5xx": {"times", "status", "message", "retry_after", "reply"},
    "hang": {"attempts", "reply"},
    "slow": {"seconds", "reply"},
}


class ScriptError(ValueError):
    """The marker in the prompt is not a valid script."""


@dataclass(frozen=True)
class Script:
    """One parsed marker: a script name and its parameters (strings, unescaped)."""

    name: str = "text"
    parameters: dict[str, str] = field(default_factory=dict)
    marker: str = ""

    @property
    def reply(self) -> str:
        return self.parameters.get("reply", DEFAULT_REPLY)

    @property
    def path(self) -> str:
        return self.parameters["path"]

    @property
    def command(self) -> str:
        return self.parameters["command"]

    @property
    def content(self) -> str:
        return self.parameters.get("content", DEFAULT_WRITE_CONTENT)

    @property
    def message(self) -> str:
        default = "invalid api key" if self.name == "fail-401" else "scripted upstream failure"
        return self.parameters.get("message", default)

    @property
    def times(self) -> int:
        return int(self.parameters.get("times", "2"))

    @property
    def attempts(self) -> int | None:
        """How many agent sessions the misbehaviour lasts for (None: all of them)."""
        value = self.parameters.get("attempts")
        return int(value) if value is not None else None

    @property
    def status(self) -> int:
        return int(self.parameters.get("status", "500"))

    @property
    def seconds(self) -> float:
        return float(self.parameters.get("seconds", "3"))

    @property
    def retry_after(self) -> float | None:
        raw = self.parameters.get("retry_after")
        return None if raw is None else float(raw)


def _unquote(raw: str) -> str:
    if not raw.startswith('"'):
        return raw
    body = raw[1:-1]
    return re.sub(r"\\(.)", lambda match: _ESCAPES.get(match.group(1), match.group(1)), body)


def parse_script(text: str) -> Script:
    """The script of a first user message (``text`` when it carries no marker)."""
    match = _MARKER.search(text)
    if match is None:
        if "[script:" in text:
            raise ScriptError(f"malformed script marker in: {text[:200]!r}")
        return Script()
    name = match.group(1)
    if name not in SCRIPT_NAMES:
        raise ScriptError(f"unknown script {name!r}; known: {sorted(SCRIPT_NAMES)}")
    parameters = {key: _unquote(raw) for key, raw in _PARAMETER.findall(match.group(2))}
    unknown = set(parameters) - _ALLOWED_PARAMETERS[name]
    if unknown:
        raise ScriptError(f"script {name!r} takes no parameter(s) {sorted(unknown)}")
    script = Script(name=name, parameters=parameters, marker=match.group(0))
    _validate(script)
    return script


def _validate(script: Script) -> None:
    try:
        if script.name in {"write", "read"} and not script.parameters.get("path"):
            raise ScriptError(f"script {script.name!r} needs path=...")
        if script.name == "bash" and not script.parameters.get("command"):
            raise ScriptError("script 'bash' needs command=...")
        if script.name == "fail-5xx":
            if script.attempts is not None and not 0 <= script.attempts <= MAX_FAILURES:
                raise ScriptError(f"attempts must be within 0..{MAX_FAILURES}")
            if not 0 <= script.times <= MAX_FAILURES:
                raise ScriptError(f"times must be within 0..{MAX_FAILURES}")
            if script.status not in RETRYABLE_STATUSES:
                raise ScriptError(f"status must be one of {sorted(RETRYABLE_STATUSES)}")
            if script.retry_after is not None and not 0 <= script.retry_after <= MAX_SLOW_SECONDS:
                raise ScriptError(f"retry_after must be within 0..{MAX_SLOW_SECONDS:g}")
        if script.name == "slow" and not 0 <= script.seconds <= MAX_SLOW_SECONDS:
            raise ScriptError(f"seconds must be within 0..{MAX_SLOW_SECONDS:g}")
    except ValueError as error:
        if isinstance(error, ScriptError):
            raise
        raise ScriptError(f"invalid parameter in {script.marker!r}: {error}") from error
