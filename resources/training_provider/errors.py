"""Typed failures of the provider adapter: what the provider said (code, message, HTTP status),
never the API key."""

from __future__ import annotations

from domain.errors import DomainError


class ProviderError(DomainError):
    """The fine-tuning provider answered with an error, or could not be reached."""

    def __init__(
        self, base_url: str, action: str, code: str, message: str, status_code: int | None = None
    ) -> None:
        self.base_url = base_url
        self.action = action
        self.code = code
        self.message = message
        self.status_code = status_code
        status = f" ({status_code})" if status_code else ""
        super().__init__(f"provider {base_url}{status}: {action}: {code}: {message}")


class ProviderUnavailable(ProviderError):
    """Down, timing out or failing with 5xx, still after the client's retries."""


class ProviderRateLimited(ProviderError):
    """429, still after the client's retries (with backoff, honouring Retry-After)."""


class ProviderRejected(ProviderError):
    """The provider refused the request (4xx): unknown model or file, invalid input, a job that
    cannot be cancelled; `code` is the provider's (``model_not_found``, ...)."""


class ProviderAuthenticationFailed(ProviderRejected):
    """401 / 403: the key is wrong or lacks the permission (the key itself is not shown)."""


class ProviderProtocolError(ProviderError):
    """The provider answered something this adapter does not understand (an unknown status)."""
