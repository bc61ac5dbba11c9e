"""The OpenAI-compatible fine-tuning provider as a Dagster resource.

The code location binds `configured_training_provider_resource()`: the base URL from
``INDORCH_PROVIDER_BASE_URL``, the key as an `EnvVar` of ``INDORCH_PROVIDER_API_KEY`` (resolved
where the run executes; never in the snapshot, the UI or a log). A real provider works unchanged:
point the base URL at it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import dagster as dg
from pydantic import Field

from domain.errors import InvalidSetting
from resources import settings

if TYPE_CHECKING:
    from resources.training_provider.client import TrainingProviderClient


class TrainingProviderResource(dg.ConfigurableResource):
    """Builds `TrainingProviderClient`s for the configured provider account."""

    base_url: str | None = Field(
        default=None, description="The provider's API base URL, e.g. https://host/v1."
    )
    api_key: str | None = Field(default=None, description="The provider's API key (an EnvVar).")
    max_retries: int = Field(
        default=3, ge=0, le=10, description="Retries of a 429, 5xx or unreachable provider."
    )
    timeout_seconds: float = Field(default=60.0, gt=0, description="Per request.")

    def client(self) -> TrainingProviderClient:
        """`InvalidSetting` naming the variable when the URL or the key is missing."""
        if not self.base_url:
            raise InvalidSetting(settings.PROVIDER_BASE_URL_VAR, "not set: the provider's /v1 URL")
        if not self.api_key:
            raise InvalidSetting(settings.PROVIDER_API_KEY_VAR, "not set: the provider's API key")
        # Imported here: the openai client is ~0.5 s of imports that every process loading the
        # code location would otherwise pay; only a fine-tuning or evaluation step needs it.
        import openai

        from resources.training_provider.client import TrainingProviderClient

        return TrainingProviderClient(
            openai.OpenAI(
                base_url=self.base_url,
                api_key=self.api_key,
                max_retries=self.max_retries,
                timeout=self.timeout_seconds,
            ),
            display_url(self.base_url),
        )

    def api_url(self) -> str:
        """The provider's API base URL (what agents' servers call the tuned models at)."""
        if not self.base_url:
            raise InvalidSetting(settings.PROVIDER_BASE_URL_VAR, "not set: the provider's /v1 URL")
        return self.base_url


def display_url(base_url: str) -> str:
    """The provider's URL as errors name it: scheme, host and port, never credentials."""
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path.removesuffix("/v1"), "", ""))


def configured_training_provider_resource() -> TrainingProviderResource:
    """The resource from the environment (unset: a resource that says what to set when used)."""
    api_key = (
        dg.EnvVar(settings.PROVIDER_API_KEY_VAR)
        if settings.provider_api_key_is_configured()
        else None
    )
    return TrainingProviderResource(base_url=settings.provider_base_url(), api_key=api_key)
