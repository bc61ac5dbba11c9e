"""The provider resource takes its URL and key from the environment through settings; the key
is bound as an EnvVar (resolved where the run executes, never in the snapshot or an error)."""

from __future__ import annotations

import dagster as dg
import pytest

from domain.errors import InvalidSetting
from domain.fine_tuning import TrainingParameters
from resources import settings
from resources.training_provider.client import hyperparameters
from resources.training_provider.resource import (
    TrainingProviderResource,
    configured_training_provider_resource,
)

SECRET = "sk-live-do-not-show-0123"


def test_the_key_from_the_environment_is_bound_as_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INDORCH_PROVIDER_BASE_URL", "https://provider.example/v1")
    monkeypatch.setenv("INDORCH_PROVIDER_API_KEY", SECRET)
    resource = configured_training_provider_resource()
    assert resource == TrainingProviderResource(
        base_url="https://provider.example/v1", api_key=dg.EnvVar("INDORCH_PROVIDER_API_KEY")
    )
    assert SECRET not in repr(resource)
    with resource.process_config_and_initialize_cm() as resolved:
        assert resolved.api_key == SECRET
        assert resolved.client().base_url == "https://provider.example"


def test_unset_provider_settings_are_named_when_the_client_is_asked_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("INDORCH_PROVIDER_BASE_URL", raising=False)
    monkeypatch.delenv("INDORCH_PROVIDER_API_KEY", raising=False)
    resource = configured_training_provider_resource()
    assert resource == TrainingProviderResource(base_url=None, api_key=None)
    with pytest.raises(InvalidSetting) as refused:
        resource.client()
    assert refused.value.setting == "INDORCH_PROVIDER_BASE_URL"


def test_a_base_url_that_is_not_http_is_refused_without_echoing_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INDORCH_PROVIDER_BASE_URL", f"ftp://user:{SECRET}@host/v1")
    with pytest.raises(InvalidSetting) as refused:
        settings.provider_base_url()
    assert refused.value.setting == "INDORCH_PROVIDER_BASE_URL"
    assert SECRET not in str(refused.value)


def test_our_learning_rate_is_sent_as_a_multiplier_of_the_default() -> None:
    sent = hyperparameters(TrainingParameters(epochs=4, batch_size=16, learning_rate=4e-4))
    assert sent == {"n_epochs": 4, "batch_size": 16, "learning_rate_multiplier": 2.0}


def test_errors_name_the_provider_without_credentials_in_its_url() -> None:
    resource = TrainingProviderResource(
        base_url=f"https://gateway:{SECRET}@provider.example:8443/v1", api_key="k"
    )
    assert resource.client().base_url == "https://provider.example:8443"
