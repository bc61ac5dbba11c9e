"""The suite runs on several pytest-xdist workers (scripts/test.sh): what keeps them apart."""

from __future__ import annotations

import pytest

from tests.conftest import INTEGRATION_DIR, TESTS_DIR, _worker_redis_url, xdist_group_of


def test_the_tests_that_take_the_whole_machine_share_one_group_and_the_rest_go_by_module() -> None:
    whole_machine = {
        xdist_group_of(INTEGRATION_DIR / "runtime" / "test_managed_runtimes.py"),
        xdist_group_of(INTEGRATION_DIR / "runtime" / "test_runtime_cli.py"),
        xdist_group_of(INTEGRATION_DIR / "deploy" / "test_production_sessions.py"),
        xdist_group_of(TESTS_DIR / "e2e" / "test_demo.py"),
        xdist_group_of(TESTS_DIR / "chaos" / "test_chaos.py"),
    }
    assert whole_machine == {"whole-machine"}
    assert xdist_group_of(INTEGRATION_DIR / "api" / "test_sessions_api.py") == (
        "integration/api/test_sessions_api.py"
    )
    assert xdist_group_of(TESTS_DIR / "e2e" / "test_session_waves.py") != xdist_group_of(
        TESTS_DIR / "e2e" / "test_decomposition.py"
    )


@pytest.mark.parametrize(
    ("worker", "expected"),
    [
        (None, "redis://127.0.0.1:6379/15"),
        ("gw0", "redis://127.0.0.1:6379/15"),
        ("gw1", "redis://127.0.0.1:6379/14"),
        ("gw2", "redis://127.0.0.1:6379/13"),
    ],
)
def test_each_worker_has_a_redis_database_of_its_own(
    worker: str | None, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if worker is None:
        monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    else:
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
    assert _worker_redis_url("redis://127.0.0.1:6379/15") == expected
    assert _worker_redis_url(None) is None
