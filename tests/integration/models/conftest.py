"""Fixtures of the learning-loop tests: the migrated databases of the persistence tests and the
stand-in fine-tuning provider on a free port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from resources.training_provider.client import TrainingProviderClient
from resources.training_provider.resource import TrainingProviderResource
from standins.finetune_provider.server import FineTuneProviderServer
from tests.integration.database.conftest import (  # noqa: F401
    database,
    migrated_postgres_url,
    migrated_sqlite_url,
)

PLATFORM_KEY = "sk-platform-0123456789"
BASE_MODEL = "base-coder"


@pytest.fixture
def provider_server(tmp_path: Path) -> Iterator[FineTuneProviderServer]:
    with FineTuneProviderServer(tmp_path / "provider", step_seconds=0.1) as server:
        yield server


@pytest.fixture
def provider(provider_server: FineTuneProviderServer) -> TrainingProviderClient:
    return TrainingProviderResource(base_url=provider_server.api_url, api_key=PLATFORM_KEY).client()
