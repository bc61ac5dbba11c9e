"""`indorch api serve`: uvicorn without its access log unless asked (`--access-log`): a line
logged per request was a few per cent of the server's CPU under load, and every request is
already counted by route and status in the API's latency histogram (`GET /metrics`)."""

from __future__ import annotations

from typing import Any

import pytest
import uvicorn
from typer.testing import CliRunner

from indorch.main import app


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda target, **options: calls.append(options))
    return calls


def test_serve_runs_uvicorn_without_the_access_log_by_default(runs: list[dict[str, Any]]) -> None:
    result = CliRunner().invoke(app, ["api", "serve", "--port", "8123", "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert runs == [
        {
            "factory": True,
            "host": "127.0.0.1",
            "port": 8123,
            "workers": 2,
            "log_level": "info",
            "access_log": False,
        }
    ]


def test_the_access_log_is_kept_on_request(runs: list[dict[str, Any]]) -> None:
    result = CliRunner().invoke(app, ["api", "serve", "--access-log"])
    assert result.exit_code == 0, result.output
    assert runs[0]["access_log"] is True
