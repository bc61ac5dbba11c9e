"""What a confined runtime may still open: its own providers, the platform's fine-tuning provider
(a promoted model is served there, added to the runtime's config after it started) and what
the operator allows; nothing else on the loopback."""

from __future__ import annotations

import json

import pytest

from resources.runtime_host import network_rules
from resources.settings import PROVIDER_BASE_URL_VAR


def _ports(endpoints: list[network_rules.Endpoint]) -> set[int]:
    return {endpoint.port for endpoint in endpoints}


def test_the_platform_provider_and_the_operators_allowances_are_reachable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(PROVIDER_BASE_URL_VAR, "http://127.0.0.1:4711/v1")
    monkeypatch.setenv(network_rules.ALLOW_VAR, "127.0.0.1:9418")
    config = {"provider": {"scripted": {"options": {"baseURL": "http://127.0.0.1:5005/v1"}}}}
    ports = _ports(network_rules.needed_endpoints(json.dumps(config)))
    assert {5005, 4711, 9418} <= ports
    assert not {5432, 6379} & ports


def test_without_a_platform_provider_only_the_runtimes_own_are_reachable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(PROVIDER_BASE_URL_VAR, raising=False)
    monkeypatch.delenv(network_rules.ALLOW_VAR, raising=False)
    config = {"provider": {"scripted": {"options": {"baseURL": "http://127.0.0.1:5005/v1"}}}}
    assert _ports(network_rules.needed_endpoints(json.dumps(config))) - {53} == {5005}


def test_a_served_endpoint_is_added_to_the_operators_allowances(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The demo's and the bench's git server on the loopback: added to what the operator
    allows, not in place of it."""
    monkeypatch.setenv(network_rules.ALLOW_VAR, "127.0.0.1:9418")
    assert network_rules.allowing("127.0.0.1:8080") == "127.0.0.1:9418,127.0.0.1:8080"
    monkeypatch.delenv(network_rules.ALLOW_VAR)
    assert network_rules.allowing("127.0.0.1:8080") == "127.0.0.1:8080"
    monkeypatch.setenv(network_rules.ALLOW_VAR, network_rules.allowing("127.0.0.1:8080"))
    config = {"provider": {"scripted": {"options": {"baseURL": "http://127.0.0.1:5005/v1"}}}}
    assert 8080 in _ports(network_rules.needed_endpoints(json.dumps(config)))
