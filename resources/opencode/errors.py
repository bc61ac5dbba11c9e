"""Typed failures of the OpenCode adapter."""

from __future__ import annotations

from domain.errors import DomainError


class AgentServerError(DomainError):
    """The OpenCode server answered with an error, or could not be reached."""

    def __init__(self, url: str, detail: str, status_code: int | None = None) -> None:
        self.url = url
        self.detail = detail
        self.status_code = status_code
        code = f" ({status_code})" if status_code else ""
        super().__init__(f"OpenCode server {url}{code}: {detail}")


class AgentSessionGone(AgentServerError):
    """The agent-side session does not exist (any more) on that server."""
